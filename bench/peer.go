package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The peer process is the runner's own executable, started again with
// roleEnv set: MaybeChild, called first thing in main (or TestMain), turns
// it into the other side of one cell. Its files: fd 3 is the control
// socket (JSON lines), fds 4... the transport's files.
const (
	roleEnv  = "SHMKIT_BENCH_ROLE"
	specEnv  = "SHMKIT_BENCH_SPEC"
	rolePeer = "peer"
	ctlFD    = 3
)

// Control messages between the runner and the peer.
//
//	peer -> runner  ready                  endpoints open
//	peer -> runner  phase {msgs, cpu_ns}   a phase's end marker(s) arrived
//	peer -> runner  error {error}          verification or transport failure
//	runner -> peer  next | quit            after each phase report
const (
	msgReady = "ready"
	msgPhase = "phase"
	msgError = "error"
	msgNext  = "next"
	msgQuit  = "quit"
)

type ctlMsg struct {
	Type  string `json:"type"`
	Msgs  int64  `json:"msgs,omitempty"`
	CPUNs int64  `json:"cpu_ns,omitempty"`
	Err   string `json:"error,omitempty"`
}

// ctl carries control messages to the other side.
type ctl interface {
	send(m ctlMsg) error
	recv(ctx context.Context) (ctlMsg, error)
}

// connCtl is a ctl over a socket: one JSON object per line.
type connCtl struct {
	c   net.Conn
	enc *json.Encoder
	dec *json.Decoder
	mu  sync.Mutex // serializes senders
}

func newConnCtl(c net.Conn) *connCtl {
	return &connCtl{c: c, enc: json.NewEncoder(c), dec: json.NewDecoder(c)}
}

func (c *connCtl) send(m ctlMsg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.Encode(m)
}

func (c *connCtl) recv(ctx context.Context) (ctlMsg, error) {
	stop := context.AfterFunc(ctx, func() { c.c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var m ctlMsg
	err := c.dec.Decode(&m)
	if err != nil && ctx.Err() != nil {
		return m, context.Cause(ctx)
	}
	return m, err
}

// chanCtl is a ctl between goroutines (in-process transports).
type chanCtl struct {
	in  <-chan ctlMsg
	out chan<- ctlMsg
}

func chanCtlPair() (a, b chanCtl) {
	x, y := make(chan ctlMsg, 16), make(chan ctlMsg, 16)
	return chanCtl{in: x, out: y}, chanCtl{in: y, out: x}
}

func (c chanCtl) send(m ctlMsg) error {
	select {
	case c.out <- m:
		return nil
	default: // the other side stopped reading: it failed
		return errors.New("bench: control channel full")
	}
}

func (c chanCtl) recv(ctx context.Context) (ctlMsg, error) {
	select {
	case m := <-c.in:
		return m, nil
	case <-ctx.Done():
		return ctlMsg{}, context.Cause(ctx)
	}
}

// MaybeChild runs this process as a bench peer if the runner started it as
// one, and then exits; otherwise it returns at once. Call it first in main
// (and in TestMain of tests that run the bench): the runner re-executes
// its own binary for the other side of each measurement.
func MaybeChild() {
	if os.Getenv(roleEnv) == "" {
		return
	}
	run := peerMain
	if os.Getenv(roleEnv) == kvRole {
		run = kvClientMain
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "shmkit bench peer: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func peerMain() error {
	if role := os.Getenv(roleEnv); role != rolePeer {
		return fmt.Errorf("unknown role %q", role)
	}
	var spec cellSpec
	if err := json.Unmarshal([]byte(os.Getenv(specEnv)), &spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	tr := lookupTransport(spec.Transport)
	if tr == nil || tr.inProcess {
		return fmt.Errorf("unknown transport %q", spec.Transport)
	}
	// SIGINT from a terminal reaches the whole process group: the runner
	// decides what happens, and kills this process if it must (and the
	// kernel does if the runner dies).
	signal.Ignore(syscall.SIGINT)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cf := os.NewFile(ctlFD, "ctl")
	conn, err := fileConn(cf)
	cf.Close()
	if err != nil {
		return err
	}
	defer conn.Close()
	c := newConnCtl(conn)
	if spec.CPU >= 0 {
		if err := pinProcess([]int{spec.CPU}); err != nil {
			return err
		}
	}
	files := make([]*os.File, spec.Files)
	for i := range files {
		files[i] = os.NewFile(uintptr(ctlFD+1+i), fmt.Sprintf("file%d", i))
	}
	eps, err := tr.attach(spec, files)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		c.send(ctlMsg{Type: msgError, Err: err.Error()})
		return err
	}
	defer closeEPs(eps)
	return runPeer(ctx, spec, eps, c, false)
}

// firstErr keeps the first error of several goroutines and cancels their
// context with it.
type firstErr struct {
	once   sync.Once
	err    error
	cancel context.CancelCauseFunc
}

func (f *firstErr) set(err error) {
	f.once.Do(func() {
		f.err = err
		f.cancel(err)
	})
}

// runPeer is the receiving side of a cell: it verifies every message,
// reports each phase and, for rtt, echoes each message back. A failure is
// reported to the runner too.
func runPeer(ctx context.Context, spec cellSpec, eps []endpoint, c ctl, inProcess bool) error {
	err := peerLoop(ctx, spec, eps, c, inProcess)
	if err != nil && ctx.Err() == nil {
		c.send(ctlMsg{Type: msgError, Err: err.Error()})
	}
	return err
}

func peerLoop(ctx context.Context, spec cellSpec, eps []endpoint, c ctl, inProcess bool) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() {
		for _, e := range eps {
			e.interrupt()
		}
	})
	defer stop()
	ordered := spec.Producers <= 1 && spec.Consumers <= 1
	vs := make([]*verifier, len(eps))
	bufs := make([][]byte, len(eps))
	for i := range eps {
		vs[i] = newVerifier(spec.Size, ordered)
		bufs[i] = make([]byte, headroom+spec.Size)
	}
	cpu0 := cpuTime()
	if err := c.send(ctlMsg{Type: msgReady}); err != nil {
		return err
	}
	for phase := 0; ; phase++ {
		var msgs int64
		var err error
		if spec.rtt() {
			msgs, err = echoPhase(ctx, eps[0], vs[0], bufs[0], phase, spec.CPU >= 0)
		} else {
			msgs, err = sinkPhase(ctx, spec, eps, vs, bufs, phase)
		}
		if err != nil {
			return err
		}
		cpu1 := cpuTime()
		rep := ctlMsg{Type: msgPhase, Msgs: msgs, CPUNs: int64(cpu1 - cpu0)}
		if inProcess {
			rep.CPUNs = 0 // the runner's own usage covers this side
		}
		cpu0 = cpu1
		if err := c.send(rep); err != nil {
			return err
		}
		m, err := c.recv(ctx)
		if err != nil {
			return err
		}
		if m.Type != msgNext {
			return nil
		}
	}
}

func checkMarker(seq uint64, phase int) error {
	if got := int(seq & counterMax); got != phase {
		return fmt.Errorf("bench: end marker of phase %d during phase %d", got, phase)
	}
	return nil
}

// sinkPhase receives until every consumer has seen one end marker from
// each producer (each producer sends one per consumer), and returns the
// number of messages received.
func sinkPhase(ctx context.Context, spec cellSpec, eps []endpoint, vs []*verifier, bufs [][]byte, phase int) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fe := &firstErr{cancel: cancel}
	counts := make([]int64, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			if spec.CPU >= 0 {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			buf := bufs[i][headroom:]
			for markers := 0; markers < max(spec.Producers, 1); {
				n, err := ep.recv(ctx, buf)
				if err != nil {
					fe.set(fmt.Errorf("receive: %w", err))
					return
				}
				seq, err := vs[i].check(buf[:n])
				if err != nil {
					fe.set(err)
					return
				}
				if seq&markerBit != 0 {
					if err := checkMarker(seq, phase); err != nil {
						fe.set(err)
						return
					}
					markers++
					continue
				}
				counts[i]++
			}
		})
	}
	wg.Wait()
	if fe.err != nil {
		return 0, fe.err
	}
	var n int64
	for _, c := range counts {
		n += c
	}
	return n, nil
}

// echoPhase sends every message back until the phase's end marker, which
// it echoes too.
func echoPhase(ctx context.Context, ep endpoint, v *verifier, buf []byte, phase int, lock bool) (int64, error) {
	if lock {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	var msgs int64
	for {
		n, err := ep.recv(ctx, buf[headroom:])
		if err != nil {
			return msgs, fmt.Errorf("receive: %w", err)
		}
		seq, err := v.check(buf[headroom : headroom+n])
		if err != nil {
			return msgs, err
		}
		if err := ep.send(ctx, buf[:headroom+n]); err != nil {
			return msgs, fmt.Errorf("send: %w", err)
		}
		if seq&markerBit != 0 {
			return msgs, checkMarker(seq, phase)
		}
		msgs++
	}
}

// cpuTime is this process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var errPeerExited = errors.New("bench: peer process exited")
