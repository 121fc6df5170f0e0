package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/shmkit/shmkit/ringbuf"
)

// headroom is the number of bytes in front of every outgoing message that
// framing transports fill with its length, so a framed message goes out in
// one write without a copy.
const headroom = 4

// endpoint is one goroutine's end of a transport.
type endpoint interface {
	// send sends frame[headroom:] as one message; frame[:headroom] is
	// scratch space for the transport.
	send(ctx context.Context, frame []byte) error
	// recv receives one message into p and returns its length.
	recv(ctx context.Context, p []byte) (int, error)
	// interrupt unblocks calls that do not watch their context. It may run
	// concurrently with them, and more than once.
	interrupt()
	// close releases the endpoint once no call is running.
	close() error
}

// errUnavailable marks a transport that cannot run a cell on this system
// (a limit, a missing facility): the cell is reported, not failed.
var errUnavailable = errors.New("unavailable")

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUnavailable, fmt.Sprintf(format, args...))
}

// cellSpec is what the peer process needs to know about its cell.
type cellSpec struct {
	Transport string `json:"transport"`
	Mode      string `json:"mode"`
	Size      int    `json:"size"`
	Producers int    `json:"producers"`
	Consumers int    `json:"consumers"`
	CPU       int    `json:"cpu"` // the peer's CPU, or -1
	Files     int    `json:"files"`
}

func (s cellSpec) rtt() bool { return s.Mode == ModeRTT }

// setup is the runner's side of a cell.
type setup struct {
	eps   []endpoint // Producers endpoints (stream) or one (rtt)
	files []*os.File // handed to the peer process, then closed
	peer  []endpoint // in-process transports: the peer's endpoints
}

func (s *setup) closeAll() {
	for _, e := range s.eps {
		e.close()
	}
	for _, e := range s.peer {
		e.close()
	}
	for _, f := range s.files {
		f.Close()
	}
}

// transport is one way of moving messages between two processes.
type transport struct {
	name  string
	about string
	multi bool // supports several producers and consumers
	// multiMax, if positive, is the largest message size with several
	// producers or consumers: bigger cells are not planned (and setup
	// reports them unavailable).
	multiMax  int
	inProcess bool // both sides run in the runner (the reference ceiling)
	// setup creates the transport for a cell in the runner.
	setup func(s cellSpec) (*setup, error)
	// attach opens the peer's endpoints (Consumers of them for a stream,
	// one for rtt) from the files setup passed.
	attach func(s cellSpec, files []*os.File) ([]endpoint, error)
}

// transports in table order. os-pipe is the baseline of every ratio.
var transports = []*transport{
	{name: "shm-spsc", about: "shmkit Queue, SPSC mode (Put / GetInto)",
		setup: func(s cellSpec) (*setup, error) { return setupQueue(s, ringbuf.SPSC) }, attach: attachQueue},
	{name: "shm-mpmc", about: "shmkit Queue, MPMC mode (Put / GetInto), one handle per goroutine", multi: true,
		setup: func(s cellSpec) (*setup, error) { return setupQueue(s, ringbuf.MPMC) }, attach: attachQueue},
	{name: "shm-pipe", about: "shmkit Pipe, message mode (Send / RecvInto)",
		setup:  func(s cellSpec) (*setup, error) { return setupPipe(s, false) },
		attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachPipe(s, f, false) }},
	{name: "shm-pipe-stream", about: "shmkit Pipe, stream mode (Write / Read, length-prefixed frames)",
		setup:  func(s cellSpec) (*setup, error) { return setupPipe(s, true) },
		attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachPipe(s, f, true) }},
	{name: "os-pipe", about: "os.Pipe, length-prefixed frames, one write per message (the baseline); PxC: one shared pipe, frames <= PIPE_BUF, one per read", multi: true, multiMax: pipeBuf - headroom,
		setup: setupOSPipe, attach: attachOSPipe},
	{name: "unix-stream", about: "unix socketpair SOCK_STREAM, length-prefixed frames",
		setup:  func(s cellSpec) (*setup, error) { return setupSocketpair(s, syscall.SOCK_STREAM) },
		attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachSocket(f, false) }},
	{name: "unix-seqpacket", about: "unix socketpair SOCK_SEQPACKET, one record per message",
		setup:  func(s cellSpec) (*setup, error) { return setupSocketpair(s, syscall.SOCK_SEQPACKET) },
		attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachSocket(f, true) }},
	{name: "tcp", about: "TCP over 127.0.0.1 (ephemeral port, TCP_NODELAY), length-prefixed frames",
		setup: setupTCP, attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachSocket(f, false) }},
	{name: "posix-mq", about: "POSIX message queue (mq_open, unlinked at once; mq_timedsend / mq_timedreceive)",
		setup: setupMQ, attach: attachMQ},
	{name: "manager-queue-shm", about: "shmkit manager Queue (Put / Get via a server process), clients on the shared-memory Pipe",
		setup:  func(s cellSpec) (*setup, error) { return setupManager(s, false) },
		attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachManager(s, f, false) }},
	{name: "manager-queue-unix", about: "shmkit manager Queue (Put / Get via a server process), clients on the unix socket",
		setup:  func(s cellSpec) (*setup, error) { return setupManager(s, true) },
		attach: func(s cellSpec, f []*os.File) ([]endpoint, error) { return attachManager(s, f, true) }},
	{name: "go-chan", about: "Go channel between goroutines of one process, copy in and out (reference ceiling, not IPC)",
		multi: true, inProcess: true, setup: setupChan},
}

// Baseline is the transport every ratio is computed against.
const Baseline = "os-pipe"

// Transports lists the names of the transports, in table order, with a
// line about each.
func Transports() [][2]string {
	out := make([][2]string, 0, len(transports)+2)
	for _, t := range transports {
		out = append(out, [2]string{t.name, t.about})
	}
	for _, p := range pyTransports {
		out = append(out, [2]string{p.name, p.about + " (with --python)"})
	}
	return out
}

func lookupTransport(name string) *transport {
	for _, t := range transports {
		if t.name == name {
			return t
		}
	}
	return nil
}

// readProcInt reads a number from a /proc file.
func readProcInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// ringFor sizes a ring: 1 MiB, or room for 8 large messages.
func ringFor(size int) int { return max(1<<20, 8*(size+64)) }

// ---- shmkit Queue ----

type queueEP struct{ out, in *ringbuf.Queue }

func (e *queueEP) send(ctx context.Context, f []byte) error { return e.out.Put(ctx, f[headroom:]) }
func (e *queueEP) recv(ctx context.Context, p []byte) (int, error) {
	return e.in.GetInto(ctx, p)
}
func (e *queueEP) interrupt() {} // Put and GetInto watch ctx
func (e *queueEP) close() error {
	var errs []error
	for _, q := range []*ringbuf.Queue{e.out, e.in} {
		if q != nil {
			errs = append(errs, q.Close())
		}
	}
	return errors.Join(errs...)
}

func setupQueue(s cellSpec, mode ringbuf.Mode) (*setup, error) {
	o := ringbuf.Options{Mode: mode, Capacity: ringFor(s.Size), MaxMessage: s.Size}
	st := &setup{}
	ok := false
	defer func() {
		if !ok {
			st.closeAll()
		}
	}()
	q, err := ringbuf.CreateAnonymous(o)
	if err != nil {
		return nil, fmt.Errorf("create queue: %w", err)
	}
	ep := &queueEP{out: q}
	st.eps = append(st.eps, ep)
	f, err := q.File()
	if err != nil {
		return nil, err
	}
	st.files = append(st.files, f)
	if s.rtt() {
		back, err := ringbuf.CreateAnonymous(o)
		if err != nil {
			return nil, fmt.Errorf("create queue: %w", err)
		}
		ep.in = back
		g, err := back.File()
		if err != nil {
			return nil, err
		}
		st.files = append(st.files, g)
		ok = true
		return st, nil
	}
	// Each producer goroutine gets its own handle (a handle serializes
	// its goroutines).
	for i := 1; i < s.Producers; i++ {
		h, err := ringbuf.OpenFile(f)
		if err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
		st.eps = append(st.eps, &queueEP{out: h})
	}
	ok = true
	return st, nil
}

func attachQueue(s cellSpec, files []*os.File) (eps []endpoint, err error) {
	defer func() {
		if err != nil {
			closeEPs(eps)
		}
	}()
	if s.rtt() {
		in, err := ringbuf.OpenFile(files[0])
		if err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
		ep := &queueEP{in: in}
		eps = append(eps, ep)
		if ep.out, err = ringbuf.OpenFile(files[1]); err != nil {
			return eps, fmt.Errorf("open queue: %w", err)
		}
		return eps, nil
	}
	for i := 0; i < s.Consumers; i++ {
		in, err := ringbuf.OpenFile(files[0])
		if err != nil {
			return eps, fmt.Errorf("open queue: %w", err)
		}
		eps = append(eps, &queueEP{in: in})
	}
	return eps, nil
}

func closeEPs(eps []endpoint) {
	for _, e := range eps {
		e.close()
	}
}

// ---- shmkit Pipe ----

type pipeMsgEP struct{ c *ringbuf.Conn }

func (e pipeMsgEP) send(ctx context.Context, f []byte) error { return e.c.Send(ctx, f[headroom:]) }
func (e pipeMsgEP) recv(ctx context.Context, p []byte) (int, error) {
	return e.c.RecvInto(ctx, p)
}
func (e pipeMsgEP) interrupt()   {}
func (e pipeMsgEP) close() error { return e.c.Close() }

func pipeOptions(size int) ringbuf.PipeOptions {
	return ringbuf.PipeOptions{Capacity: ringFor(size + headroom), MaxMessage: size + headroom}
}

func setupPipe(s cellSpec, stream bool) (*setup, error) {
	a, b, err := ringbuf.NewPipe(pipeOptions(s.Size))
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	f, err := b.File()
	b.Close() // never used: only detaches
	if err != nil {
		a.Close()
		return nil, err
	}
	return &setup{eps: []endpoint{pipeEndpoint(a, stream)}, files: []*os.File{f}}, nil
}

func pipeEndpoint(c *ringbuf.Conn, stream bool) endpoint {
	if stream {
		return newFramed(c, c, c)
	}
	return pipeMsgEP{c}
}

func attachPipe(_ cellSpec, files []*os.File, stream bool) ([]endpoint, error) {
	c, err := ringbuf.OpenPipeFile(files[0])
	if err != nil {
		return nil, fmt.Errorf("open pipe: %w", err)
	}
	return []endpoint{pipeEndpoint(c, stream)}, nil
}
