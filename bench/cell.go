package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	// readyTimeout bounds how long a peer may take to start and attach.
	readyTimeout = 30 * time.Second
	// quitTimeout bounds how long a peer told to quit may take to exit
	// before it is killed.
	quitTimeout = 3 * time.Second
	// errorWait is how long the runner waits, after a failure on its side,
	// for the peer's account of it (a peer that found corrupt data says so
	// and exits, and the runner then sees a broken transport).
	errorWait = 2 * time.Second
	// histMax is the largest round trip the histogram records exactly;
	// longer ones are recorded as histMax (Max still reports them).
	histMax = int64(10 * time.Second)
)

var errCellTimeout = errors.New("bench: measurement timed out (a transport stalled)")

// runner runs cells one after another.
type runner struct {
	cfg        Config
	pinned     bool
	cpus       []int // the CPUs allowed at start, restored after pinning
	self, peer int   // CPUs of the runner and the peer when pinned
}

func (r *runner) setupPin() error {
	cpus, err := allowedCPUs()
	if err != nil {
		return fmt.Errorf("bench: pin: %w", err)
	}
	if len(cpus) < 2 {
		return fmt.Errorf("bench: pin needs two CPUs; this process may use %v", cpus)
	}
	r.pinned, r.cpus, r.self, r.peer = true, cpus, cpus[0], cpus[1]
	return nil
}

func (r *runner) unpin() { pinProcess(r.cpus) }

// phaseStats is one phase as the runner saw it.
type phaseStats struct {
	elapsed time.Duration
	msgs    int64
	cpu     time.Duration // both processes
	hist    *hdrhistogram.Histogram
	max     time.Duration
}

func (r *runner) runCell(ctx context.Context, c cell) Result {
	s := c.spec
	res := Result{Transport: s.Transport, Mode: s.Mode, Size: s.Size, Producers: s.Producers, Consumers: s.Consumers, Reference: c.tr.inProcess}
	if err := r.measure(ctx, c, &res); err != nil {
		if errors.Is(err, errUnavailable) {
			res.Unavailable = strings.TrimPrefix(err.Error(), errUnavailable.Error()+": ")
		} else {
			res.Err = err.Error()
		}
	}
	return res
}

func (r *runner) watchdog() time.Duration {
	return time.Minute + 3*(r.cfg.Warmup+time.Duration(r.cfg.Reps)*r.cfg.Duration)
}

func (r *runner) measure(parent context.Context, c cell, res *Result) (err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	ctx, stopTimer := context.WithTimeoutCause(ctx, r.watchdog(), errCellTimeout)
	defer stopTimer()
	spec := c.spec
	st, err := c.tr.setup(spec)
	if err != nil {
		return err
	}
	defer st.closeAll()
	spec.Files = len(st.files)
	if r.pinned && !c.tr.inProcess {
		spec.CPU = r.peer
		if err := pinProcess([]int{r.self}); err != nil {
			return err
		}
		defer pinProcess(r.cpus)
	}

	var ctl ctl
	var peerErr func() error // the peer's end, after the last phase
	var proc *peerProc
	if c.tr.inProcess {
		a, b := chanCtlPair()
		done := make(chan struct{})
		var perr error
		go func() {
			defer close(done)
			perr = runPeer(ctx, spec, st.peer, b, true)
			if perr != nil {
				cancel(&peerError{perr.Error()}) // unblock the runner's side
			}
		}()
		defer func() {
			cancel(err)
			<-done
		}()
		ctl, peerErr = a, func() error { <-done; return perr }
	} else {
		p, serr := spawn(ctx, cancel, spec, st.files)
		st.files = nil // the peer has them now
		if serr != nil {
			return serr
		}
		defer func() { p.stop(err == nil) }()
		ctl, peerErr, proc = p.ctl, p.wait, p
	}
	stop := context.AfterFunc(ctx, func() {
		for _, e := range st.eps {
			e.interrupt()
		}
	})
	defer stop()
	defer func() {
		if err != nil {
			err = r.explain(parent, ctx, ctl, err)
		}
	}()

	rctx, rcancel := context.WithTimeout(ctx, readyTimeout)
	_, err = expect(rctx, ctl, msgReady)
	rcancel()
	if err != nil {
		return fmt.Errorf("peer not ready: %w", err)
	}
	tab := newCRCTable(spec.Size)
	gens := make([]*gen, len(st.eps))
	for i := range gens {
		gens[i] = newGen(spec.Size, i, tab)
	}
	v := newVerifier(spec.Size, true)
	var reps []phaseStats
	for phase := 0; phase <= r.cfg.Reps; phase++ {
		dur, limit := r.cfg.Warmup, max(1, r.cfg.Messages/10)
		if phase > 0 {
			dur, limit = r.cfg.Duration, r.cfg.Messages
		}
		if r.cfg.Messages <= 0 && dur > 0 {
			limit = 0
		}
		ps, err := r.phase(ctx, spec, st.eps, ctl, gens, v, phase, dur, limit)
		if err != nil {
			return err
		}
		if phase > 0 {
			reps = append(reps, ps)
		}
		next := msgNext
		if phase == r.cfg.Reps {
			next = msgQuit
			if proc != nil {
				proc.quit.Store(true) // its exit is expected from now on
			}
		}
		if err := ctl.send(ctlMsg{Type: next}); err != nil {
			return err
		}
	}
	if err := peerErr(); err != nil {
		return err
	}
	return summarize(res, reps)
}

// explain replaces a failure on the runner's side with a better account
// of it, if one comes soon: the peer's report (a peer that finds corrupt
// data reports it and exits, and the runner sees only a broken transport),
// or why the cell's context ended (the peer died, the watchdog fired).
func (r *runner) explain(parent, ctx context.Context, c ctl, err error) error {
	if parent.Err() != nil {
		return err
	}
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
	}
	var de dataError
	var pe *peerError
	if errors.Is(err, errUnavailable) || errors.As(err, &de) || errors.As(err, &pe) {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(parent), errorWait)
	defer cancel()
	for {
		m, rerr := c.recv(wctx)
		if rerr != nil {
			break
		}
		if m.Type == msgError {
			return &peerError{m.Err}
		}
	}
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
	case <-wctx.Done():
	}
	return err
}

// peerError is a failure the peer reported.
type peerError struct{ msg string }

func (e *peerError) Error() string { return "peer: " + e.msg }

// expect receives the next control message, which must be of type typ.
func expect(ctx context.Context, c ctl, typ string) (ctlMsg, error) {
	m, err := c.recv(ctx)
	switch {
	case err != nil:
		return m, err
	case m.Type == msgError:
		return m, &peerError{m.Err}
	case m.Type != typ:
		return m, fmt.Errorf("bench: control message %q where %q was due", m.Type, typ)
	}
	return m, nil
}

// phase runs one phase: the runner sends (stream) or pings (rtt) for dur,
// or limit messages per producer, then the end markers, and collects the
// peer's report.
func (r *runner) phase(ctx context.Context, spec cellSpec, eps []endpoint, c ctl, gens []*gen, v *verifier, phase int, dur time.Duration, limit int) (phaseStats, error) {
	var stop atomic.Bool
	lock := r.pinned
	cpu0 := cpuTime()
	t0 := time.Now()
	if limit <= 0 {
		t := time.AfterFunc(dur, func() { stop.Store(true) })
		defer t.Stop()
	}
	ps := phaseStats{}
	if spec.rtt() {
		ps.hist = hdrhistogram.New(1, histMax, 3)
		n, maxRTT, err := pingLoop(ctx, eps[0], gens[0], v, ps.hist, &stop, limit, phase, lock)
		if err != nil {
			return ps, err
		}
		ps.msgs, ps.max = n, maxRTT
	} else {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		fe := &firstErr{cancel: cancel}
		sent := make([]int64, len(eps))
		var wg sync.WaitGroup
		for i, ep := range eps {
			wg.Go(func() {
				n, err := produce(ctx, ep, gens[i], &stop, limit, spec.Consumers, phase, lock)
				sent[i] = n
				if err != nil {
					fe.set(err)
				}
			})
		}
		wg.Wait()
		if fe.err != nil {
			return ps, fe.err
		}
		for _, n := range sent {
			ps.msgs += n
		}
	}
	rep, err := expect(ctx, c, msgPhase)
	if err != nil {
		return ps, err
	}
	ps.elapsed = time.Since(t0)
	ps.cpu = cpuTime() - cpu0 + time.Duration(rep.CPUNs)
	if rep.Msgs != ps.msgs {
		return ps, dataError{fmt.Errorf("bench: %d messages sent, %d received (lost or repeated messages)", ps.msgs, rep.Msgs)}
	}
	return ps, nil
}

// produce sends one producer's messages of a phase, then one end marker
// per consumer.
func produce(ctx context.Context, ep endpoint, g *gen, stop *atomic.Bool, limit, markers, phase int, lock bool) (int64, error) {
	if lock {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	var n int64
	for (limit > 0 && n < int64(limit)) || (limit <= 0 && !stop.Load()) {
		if err := ep.send(ctx, g.next()); err != nil {
			return n, fmt.Errorf("send: %w", err)
		}
		n++
	}
	for range max(markers, 1) {
		if err := ep.send(ctx, g.marker(phase)); err != nil {
			return n, fmt.Errorf("send end marker: %w", err)
		}
	}
	return n, nil
}

// pingLoop runs round trips, recording each in h, then sends the end
// marker and waits for its echo.
func pingLoop(ctx context.Context, ep endpoint, g *gen, v *verifier, h *hdrhistogram.Histogram, stop *atomic.Bool, limit, phase int, lock bool) (int64, time.Duration, error) {
	if lock {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	buf := make([]byte, g.size)
	var n int64
	var maxRTT time.Duration
	for (limit > 0 && n < int64(limit)) || (limit <= 0 && !stop.Load()) {
		f := g.next()
		t0 := time.Now()
		if err := ep.send(ctx, f); err != nil {
			return n, maxRTT, fmt.Errorf("send: %w", err)
		}
		k, err := ep.recv(ctx, buf)
		d := time.Since(t0)
		if err != nil {
			return n, maxRTT, fmt.Errorf("receive: %w", err)
		}
		seq, err := v.check(buf[:k])
		if err != nil {
			return n, maxRTT, fmt.Errorf("echo: %w", err)
		}
		if seq&markerBit != 0 {
			return n, maxRTT, errors.New("bench: an end marker came back unasked")
		}
		h.RecordValue(min(d.Nanoseconds(), histMax))
		maxRTT = max(maxRTT, d)
		n++
	}
	if err := ep.send(ctx, g.marker(phase)); err != nil {
		return n, maxRTT, fmt.Errorf("send end marker: %w", err)
	}
	k, err := ep.recv(ctx, buf)
	if err != nil {
		return n, maxRTT, fmt.Errorf("receive end marker: %w", err)
	}
	seq, err := v.check(buf[:k])
	if err == nil && seq&markerBit == 0 {
		err = errors.New("bench: a message came back where the end marker was due")
	}
	if err == nil {
		err = checkMarker(seq, phase)
	}
	return n, maxRTT, err
}

// summarize fills res from the repetitions: medians of the rates, CPU
// times and percentiles; the largest round trip of all.
func summarize(res *Result, reps []phaseStats) error {
	var rates, cpus []float64
	var p50, p90, p99, p999 []float64
	for i, ps := range reps {
		if ps.msgs == 0 {
			return fmt.Errorf("bench: repetition %d measured no messages (duration too short?)", i+1)
		}
		res.Messages += ps.msgs
		rates = append(rates, float64(ps.msgs)/ps.elapsed.Seconds())
		cpus = append(cpus, float64(ps.cpu)/float64(ps.msgs))
		if ps.hist != nil {
			// The histogram reports the top of a value's bucket (3
			// significant digits): never above the exact maximum.
			q := func(p float64) float64 { return float64(min(ps.hist.ValueAtQuantile(p), int64(ps.max))) }
			p50, p90, p99, p999 = append(p50, q(50)), append(p90, q(90)), append(p99, q(99)), append(p999, q(99.9))
			res.Max = max(res.Max, ps.max)
		}
	}
	res.RepMsgsPerSec = rates
	res.MsgsPerSec = median(rates)
	res.BytesPerSec = res.MsgsPerSec * float64(res.Size)
	res.CPUPerMsg = time.Duration(median(cpus))
	if len(p50) > 0 {
		res.P50 = time.Duration(median(p50))
		res.P90 = time.Duration(median(p90))
		res.P99 = time.Duration(median(p99))
		res.P999 = time.Duration(median(p999))
	}
	return nil
}

// ---- the peer process ----

type peerProc struct {
	cmd    *exec.Cmd
	conn   net.Conn
	ctl    *connCtl
	stderr *tailBuffer
	done   chan struct{} // closed once the process is reaped
	err    error         // from Wait, valid after done
	quit   atomic.Bool   // the runner told it to quit
	kill   func() bool   // stops the kill-on-cancel hook
}

// spawn starts the peer of a cell: this executable again, with the spec
// in its environment, the control socket as fd 3 and files from fd 4. It
// closes files. If the process exits before it was told to quit, cancel
// ends the cell with the reason; if ctx ends, the process is killed.
func spawn(ctx context.Context, cancel context.CancelCauseFunc, spec cellSpec, files []*os.File) (*peerProc, error) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find own executable: %w", err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	a, b, err := socketpair(syscall.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	defer b.Close()
	p := &peerProc{stderr: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+rolePeer, specEnv+"="+string(js))
	cmd.ExtraFiles = append([]*os.File{b}, files...)
	cmd.Stderr = p.stderr
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start peer: %w", err)
	}
	p.cmd = cmd
	p.kill = context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	go func() {
		err := cmd.Wait()
		p.err = err
		close(p.done)
		if err != nil || !p.quit.Load() {
			cancel(fmt.Errorf("%w (%v)%s", errPeerExited, err, p.stderr.tail()))
		}
	}()
	if p.conn, err = fileConn(a); err != nil {
		p.stop(false)
		return nil, err
	}
	p.ctl = newConnCtl(p.conn)
	return p, nil
}

// wait waits for a peer told to quit and returns its failure, if any.
func (p *peerProc) wait() error {
	select {
	case <-p.done:
	case <-time.After(quitTimeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%w: it did not quit in %v", errPeerExited, quitTimeout)
	}
	if p.err != nil {
		return fmt.Errorf("%w (%v)%s", errPeerExited, p.err, p.stderr.tail())
	}
	return nil
}

// stop ends the peer: gracefully (it was told to quit) or by killing it.
func (p *peerProc) stop(graceful bool) {
	p.quit.Store(true)
	if !graceful {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(quitTimeout):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.kill()
	if p.conn != nil {
		p.conn.Close()
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// tail returns the last lines written, prefixed for an error message.
func (t *tailBuffer) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return ""
	}
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return ": " + s
}
