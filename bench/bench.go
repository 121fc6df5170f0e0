package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Workload modes.
const (
	// ModeStream: one-way streaming from producers to consumers.
	ModeStream = "stream"
	// ModeRTT: ping-pong, one message there and back per round trip.
	ModeRTT = "rtt"
)

// PC is a producers x consumers count.
type PC struct{ Producers, Consumers int }

func (p PC) String() string { return fmt.Sprintf("%dx%d", p.Producers, p.Consumers) }

// ParsePC parses "4x4".
func ParsePC(s string) (PC, error) {
	a, b, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	p, err1 := strconv.Atoi(a)
	c, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || p < 1 || c < 1 || p > 64 || c > 64 {
		return PC{}, fmt.Errorf("bad producers x consumers %q (want e.g. 4x4)", s)
	}
	return PC{p, c}, nil
}

// ParseSize parses a message size: 64, 4K, 4KiB, 1M, 1MiB (powers of two).
func ParseSize(s string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 1 || n > MaxSize/mult {
		return 0, fmt.Errorf("bad message size %q", s)
	}
	n *= mult
	if n < MinSize {
		return 0, fmt.Errorf("message size %s is below the minimum of %d bytes", s, MinSize)
	}
	return n, nil
}

// FormatSize prints a size as ParseSize reads it: 64B, 4KiB, 1MiB.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// Config selects what Run measures.
type Config struct {
	// Transports to run, by name (see Transports); empty means every Go
	// transport. The baseline, os-pipe, always runs: every ratio needs it.
	Transports []string
	// Modes: ModeStream, ModeRTT (empty: both).
	Modes []string
	// StreamSizes and RTTSizes are the message sizes of each mode.
	StreamSizes, RTTSizes []int
	// Counts are the producers x consumers of streaming cells on
	// transports that take several (shm-mpmc, go-chan, and os-pipe for
	// messages of at most 4092 bytes, whose frames fit PIPE_BUF; 1x1
	// elsewhere). Empty means 1x1.
	Counts []PC
	// Duration is the measured time of one repetition; Warmup runs first,
	// unmeasured, in the same processes.
	Duration, Warmup time.Duration
	// Messages, if positive, replaces Duration: each producer sends this
	// many messages per repetition (a tenth of it to warm up).
	Messages int
	// Reps is the number of repetitions; a cell reports their median.
	Reps int
	// Pin places the runner and the peer process on two different CPUs.
	Pin bool
	// Python adds Python's multiprocessing.Queue and Pipe, run by the
	// interpreter named by Python3 (default "python3").
	Python  bool
	Python3 string
	// Progress receives a line per cell (nil: none).
	Progress io.Writer
}

// Default is the configuration of a plain `shmkit bench`: 59 cells of
// 0.7 s, about 40 s on two cores.
func Default() Config {
	return Config{
		Modes:       []string{ModeStream, ModeRTT},
		StreamSizes: []int{64, 4 << 10, 64 << 10, 1 << 20},
		RTTSizes:    []int{64},
		Counts:      []PC{{1, 1}, {4, 4}},
		Duration:    200 * time.Millisecond,
		Warmup:      100 * time.Millisecond,
		Reps:        3,
	}
}

// Result is one cell: a transport, a mode, a size and a count.
type Result struct {
	Transport string
	Mode      string
	Size      int
	Producers int
	Consumers int
	// MsgsPerSec: messages (stream) or round trips (rtt) per second, the
	// median over repetitions; BytesPerSec is it times Size.
	MsgsPerSec  float64
	BytesPerSec float64
	// Round-trip latency percentiles (rtt only; medians over
	// repetitions), and the largest round trip of all repetitions.
	P50, P90, P99, P999, Max time.Duration
	// CPUPerMsg is the CPU time (user+system) of both processes per
	// message or round trip.
	CPUPerMsg time.Duration
	// Ratio compares the result with os-pipe's in the same mode and size,
	// at the same producers x consumers if os-pipe ran them, else at 1x1:
	// throughput over the pipe's for stream, the pipe's p50 over
	// this p50 for rtt. Above 1 is better than the pipe; 0 if unknown.
	Ratio float64
	// RepMsgsPerSec holds each repetition's rate.
	RepMsgsPerSec []float64
	// Messages is the number of messages (round trips) measured.
	Messages int64
	// Reference marks a result that is not cross-process IPC (go-chan) or
	// not Go (the Python references).
	Reference bool
	// Unavailable says why the cell could not run here; Err why it failed.
	Unavailable string
	Err         string
}

// OK reports whether the result is a measurement.
func (r *Result) OK() bool { return r.Unavailable == "" && r.Err == "" }

func (r *Result) label() string {
	return fmt.Sprintf("%s %s %s %s", r.Mode, FormatSize(r.Size), r.Transport, PC{r.Producers, r.Consumers})
}

// ErrFailed is returned by Run (joined with the failures) when a cell
// failed: a transport lost or corrupted data, or a process died.
var ErrFailed = errors.New("bench: some measurements failed")

// cell is one planned measurement.
type cell struct {
	tr   *transport
	spec cellSpec
}

func (c *Config) fill() error {
	d := Default()
	if len(c.Modes) == 0 {
		c.Modes = d.Modes
	}
	for _, m := range c.Modes {
		if m != ModeStream && m != ModeRTT {
			return fmt.Errorf("bench: unknown mode %q (want stream or rtt)", m)
		}
	}
	if len(c.Counts) == 0 {
		c.Counts = []PC{{1, 1}}
	}
	if c.Reps <= 0 {
		c.Reps = 1
	}
	if c.Duration <= 0 && c.Messages <= 0 {
		c.Duration = d.Duration
	}
	if c.Python3 == "" {
		c.Python3 = "python3"
	}
	for _, s := range append(slices.Clone(c.StreamSizes), c.RTTSizes...) {
		if s < MinSize || s > MaxSize {
			return fmt.Errorf("bench: message size %d out of range [%d, %d]", s, MinSize, MaxSize)
		}
	}
	return nil
}

// plan lists the Go cells in table order: by mode, size, transport, count.
func (c *Config) plan() ([]cell, error) {
	want := map[string]bool{Baseline: true}
	if len(c.Transports) == 0 {
		for _, t := range transports {
			want[t.name] = true
		}
	}
	for _, n := range c.Transports {
		if lookupTransport(n) == nil && lookupPy(n) == nil {
			return nil, fmt.Errorf("bench: unknown transport %q", n)
		}
		want[n] = true
	}
	var cells []cell
	for _, mode := range c.Modes {
		sizes := c.StreamSizes
		if mode == ModeRTT {
			sizes = c.RTTSizes
		}
		for _, size := range sizes {
			for _, t := range transports {
				if !want[t.name] {
					continue
				}
				counts := []PC{{1, 1}}
				if t.multi && mode == ModeStream {
					counts = c.Counts
				}
				for _, pc := range counts {
					if t.multiMax > 0 && pc != (PC{1, 1}) && size > t.multiMax {
						continue // unavailable: see transport.multiMax
					}
					cells = append(cells, cell{tr: t, spec: cellSpec{
						Transport: t.name, Mode: mode, Size: size,
						Producers: pc.Producers, Consumers: pc.Consumers, CPU: -1,
					}})
				}
			}
		}
	}
	return cells, nil
}

// pyWanted lists the Python references to run: those named in
// Transports, or all of them with Python set.
func (c *Config) pyWanted() []string {
	var named, all []string
	for _, p := range pyTransports {
		all = append(all, p.name)
		if slices.Contains(c.Transports, p.name) {
			named = append(named, p.name)
		}
	}
	if len(named) > 0 {
		return named
	}
	if c.Python {
		return all
	}
	return nil
}

// Run measures every cell of cfg and returns the results in table order.
// A cell that fails is reported in its Result and the run goes on; the
// error then matches ErrFailed. If ctx ends, Run stops the cell it is
// running (killing its processes) and returns what it has with ctx's
// error.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	cells, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	py := cfg.pyWanted()
	r := &runner{cfg: cfg}
	if cfg.Pin {
		if err := r.setupPin(); err != nil {
			return nil, err
		}
		defer r.unpin()
	}
	total := len(cells)
	if len(py) > 0 {
		total += len(py) * (len(cfg.StreamSizes)*count(cfg.Modes, ModeStream) + len(cfg.RTTSizes)*count(cfg.Modes, ModeRTT))
	}
	var results []Result
	var failed []error
	done := 0
	// The Python references first: one process runs them all.
	if len(py) > 0 {
		pres, err := r.runPython(ctx, py, func(res *Result, d time.Duration) {
			done++
			r.progress(done, total, res, d)
		})
		results = append(results, pres...)
		if ctx.Err() != nil {
			return finish(results), ctx.Err()
		}
		if err != nil {
			failed = append(failed, err)
		}
		for i := range pres {
			if pres[i].Err != "" {
				failed = append(failed, fmt.Errorf("%s: %s", pres[i].label(), pres[i].Err))
			}
		}
	}
	for _, c := range cells {
		if err := ctx.Err(); err != nil {
			return finish(results), err
		}
		start := time.Now()
		res := r.runCell(ctx, c)
		if err := ctx.Err(); err != nil {
			return finish(results), err
		}
		results = append(results, res)
		if res.Err != "" {
			failed = append(failed, fmt.Errorf("%s: %s", res.label(), res.Err))
		}
		done++
		r.progress(done, total, &res, time.Since(start))
	}
	results = finish(results)
	if len(failed) > 0 {
		return results, errors.Join(append([]error{ErrFailed}, failed...)...)
	}
	return results, nil
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// finish sorts results into table order and computes the ratios.
func finish(results []Result) []Result {
	order := map[string]int{}
	for i, t := range transports {
		order[t.name] = i
	}
	for i, p := range pyTransports {
		order[p.name] = len(transports) + i
	}
	sort.SliceStable(results, func(i, j int) bool {
		a, b := &results[i], &results[j]
		if a.Mode != b.Mode {
			return a.Mode == ModeStream
		}
		if a.Size != b.Size {
			return a.Size < b.Size
		}
		if a.Transport != b.Transport {
			return order[a.Transport] < order[b.Transport]
		}
		return a.Producers*a.Consumers < b.Producers*b.Consumers
	})
	for i := range results {
		r := &results[i]
		r.Ratio = 0
		if !r.OK() {
			continue
		}
		// The baseline at the same producers x consumers, else at 1x1.
		var b *Result
		for j := range results {
			c := &results[j]
			if c.Transport != Baseline || c.Mode != r.Mode || c.Size != r.Size || !c.OK() {
				continue
			}
			same := c.Producers == r.Producers && c.Consumers == r.Consumers
			if same || (b == nil && c.Producers == 1 && c.Consumers == 1) {
				b = c
			}
			if same {
				break
			}
		}
		if b != nil {
			switch {
			case r.Mode == ModeStream && b.MsgsPerSec > 0:
				r.Ratio = r.MsgsPerSec / b.MsgsPerSec
			case r.Mode == ModeRTT && r.P50 > 0:
				r.Ratio = float64(b.P50) / float64(r.P50)
			}
		}
	}
	return results
}

func (r *runner) progress(i, n int, res *Result, d time.Duration) {
	w := r.cfg.Progress
	if w == nil {
		return
	}
	var what string
	switch {
	case res.Unavailable != "":
		what = "unavailable: " + res.Unavailable
	case res.Err != "":
		what = "FAILED: " + res.Err
	case res.Mode == ModeRTT:
		what = fmt.Sprintf("p50 %s  p99 %s", fmtDur(res.P50), fmtDur(res.P99))
	default:
		what = fmt.Sprintf("%s msg/s  %s", fmtRate(res.MsgsPerSec), fmtBytes(res.BytesPerSec))
	}
	fmt.Fprintf(w, "[%*d/%d] %-6s %7s %-16s %-4s %s (%.1fs)\n", len(strconv.Itoa(n)), i, n,
		res.Mode, FormatSize(res.Size), res.Transport, PC{res.Producers, res.Consumers}, what, d.Seconds())
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
