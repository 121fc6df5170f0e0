package bench

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// pyScript runs the Python references; see its header.
//
//go:embed bench.py
var pyScript string

type pyTransport struct{ name, about string }

// pyTransports are the Python references, run only when asked for.
var pyTransports = []pyTransport{
	{"py-mp-queue", "Python multiprocessing.Queue (put of a bytes copy / get; pickled by a feeder thread)"},
	{"py-mp-pipe", "Python multiprocessing.Pipe (send_bytes / recv_bytes_into)"},
}

func lookupPy(name string) *pyTransport {
	for i := range pyTransports {
		if pyTransports[i].name == name {
			return &pyTransports[i]
		}
	}
	return nil
}

type pyCell struct {
	Transport string `json:"transport"`
	Mode      string `json:"mode"`
	Size      int    `json:"size"`
}

type pySpec struct {
	Cells    []pyCell `json:"cells"`
	Duration float64  `json:"duration"`
	Warmup   float64  `json:"warmup"`
	Reps     int      `json:"reps"`
	Messages int      `json:"messages"`
	Pin      []int    `json:"pin"`
}

type pyRep struct {
	ElapsedNs int64   `json:"elapsed_ns"`
	Msgs      int64   `json:"msgs"`
	CPUNs     int64   `json:"cpu_ns"`
	P50       float64 `json:"p50_ns"`
	P90       float64 `json:"p90_ns"`
	P99       float64 `json:"p99_ns"`
	P999      float64 `json:"p999_ns"`
	Max       int64   `json:"max_ns"`
}

type pyResult struct {
	pyCell
	Reps  []pyRep `json:"reps"`
	Error string  `json:"error"`
}

// runPython runs the Python references in one python3 process (its
// multiprocessing children are the peers) and converts its results.
func (r *runner) runPython(ctx context.Context, names []string, progress func(*Result, time.Duration)) ([]Result, error) {
	spec := pySpec{
		Duration: r.cfg.Duration.Seconds(), Warmup: r.cfg.Warmup.Seconds(),
		Reps: r.cfg.Reps, Messages: r.cfg.Messages,
	}
	if r.pinned {
		spec.Pin = []int{r.self, r.peer}
	}
	for _, mode := range r.cfg.Modes {
		sizes := r.cfg.StreamSizes
		if mode == ModeRTT {
			sizes = r.cfg.RTTSizes
		}
		for _, size := range sizes {
			for _, n := range names {
				spec.Cells = append(spec.Cells, pyCell{Transport: n, Mode: mode, Size: size})
			}
		}
	}
	results := make([]Result, 0, len(spec.Cells))
	unavail := func(why string) []Result {
		for _, c := range spec.Cells {
			res := c.result()
			res.Unavailable = why
			results = append(results, res)
			progress(&res, 0)
		}
		return results
	}
	path, err := exec.LookPath(r.cfg.Python3)
	if err != nil {
		return unavail(fmt.Sprintf("%s not found", r.cfg.Python3)), nil
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	// A watchdog as generous as the Go cells'; the process group goes
	// with python3, so its multiprocessing children cannot outlive it.
	ctx, cancel := context.WithTimeoutCause(ctx, time.Duration(len(spec.Cells))*r.watchdog(), errCellTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-c", pyScript, string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return unavail(fmt.Sprintf("start %s: %v", path, err)), nil
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	start := time.Now()
	for sc.Scan() {
		var pr pyResult
		if err := json.Unmarshal(sc.Bytes(), &pr); err != nil {
			continue // not ours (a warning)
		}
		res := pr.result()
		results = append(results, res)
		progress(&res, time.Since(start))
		start = time.Now()
	}
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return results, context.Cause(ctx)
	}
	if werr != nil || len(results) < len(spec.Cells) {
		return results, fmt.Errorf("bench: %s: %v%s", path, errors.Join(werr, sc.Err()), stderr.tail())
	}
	return results, nil
}

func (c pyCell) result() Result {
	return Result{Transport: c.Transport, Mode: c.Mode, Size: c.Size, Producers: 1, Consumers: 1, Reference: true}
}

func (pr *pyResult) result() Result {
	res := pr.pyCell.result()
	if pr.Error != "" {
		res.Err = pr.Error
		return res
	}
	reps := make([]phaseStats, len(pr.Reps))
	var p50, p90, p99, p999 []float64
	for i, rp := range pr.Reps {
		reps[i] = phaseStats{elapsed: time.Duration(rp.ElapsedNs), msgs: rp.Msgs, cpu: time.Duration(rp.CPUNs)}
		if pr.Mode == ModeRTT {
			p50, p90, p99, p999 = append(p50, rp.P50), append(p90, rp.P90), append(p99, rp.P99), append(p999, rp.P999)
			res.Max = max(res.Max, time.Duration(rp.Max))
		}
	}
	if err := summarize(&res, reps); err != nil {
		res.Err = err.Error()
		return res
	}
	if pr.Mode == ModeRTT {
		res.P50, res.P90 = time.Duration(median(p50)), time.Duration(median(p90))
		res.P99, res.P999 = time.Duration(median(p99)), time.Duration(median(p999))
	}
	return res
}
