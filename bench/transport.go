package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// ---- framed byte streams: OS pipes, stream sockets, TCP, Pipe streams ----

type deadliner interface{ SetDeadline(time.Time) error }

// framedEP sends each message as a 4-byte length and the payload, in one
// write, and reads through a buffer; large payloads are read straight into
// the caller's buffer.
type framedEP struct {
	w      io.Writer
	r      io.Reader
	ends   []any // closers and deadliners
	rbuf   []byte
	rp, rn int
}

func newFramed(w io.Writer, r io.Reader, ends ...any) *framedEP {
	return &framedEP{w: w, r: r, ends: ends, rbuf: make([]byte, 64<<10)}
}

func (e *framedEP) send(_ context.Context, f []byte) error {
	binary.LittleEndian.PutUint32(f, uint32(len(f)-headroom))
	_, err := e.w.Write(f)
	return err
}

func (e *framedEP) fill(n int) error {
	if e.rp > 0 && len(e.rbuf)-e.rp < n {
		e.rn = copy(e.rbuf, e.rbuf[e.rp:e.rn])
		e.rp = 0
	}
	for e.rn-e.rp < n {
		k, err := e.r.Read(e.rbuf[e.rn:])
		e.rn += k
		if err != nil && e.rn-e.rp < n {
			return err
		}
	}
	return nil
}

func (e *framedEP) recv(_ context.Context, p []byte) (int, error) {
	if err := e.fill(headroom); err != nil {
		return 0, err
	}
	n := int(binary.LittleEndian.Uint32(e.rbuf[e.rp:]))
	e.rp += headroom
	if n > len(p) {
		return 0, fmt.Errorf("bench: frame of %d bytes for a %d-byte buffer", n, len(p))
	}
	got := copy(p[:n], e.rbuf[e.rp:e.rn])
	e.rp += got
	if n-got >= len(e.rbuf)/2 {
		if _, err := io.ReadFull(e.r, p[got:n]); err != nil {
			return 0, err
		}
		return n, nil
	}
	if err := e.fill(n - got); err != nil {
		return 0, err
	}
	e.rp += copy(p[got:n], e.rbuf[e.rp:e.rn])
	return n, nil
}

func (e *framedEP) interrupt() {
	for _, x := range e.ends {
		if d, ok := x.(deadliner); ok {
			d.SetDeadline(time.Unix(1, 0))
		}
	}
}

func (e *framedEP) close() error {
	var errs []error
	for _, x := range e.ends {
		if c, ok := x.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// pipeBuf is PIPE_BUF on Linux: a write of at most this many bytes to a
// pipe is atomic (never interleaved with other writers' data).
const pipeBuf = 4096

// sharedPipe reports whether an os-pipe cell has several writers or
// readers on its one pipe: fixed-size frames, one per write and per read.
func sharedPipe(s cellSpec) bool { return !s.rtt() && (s.Producers > 1 || s.Consumers > 1) }

// frameEP is one goroutine's descriptor of a pipe shared by several
// writers and readers. Every frame (4-byte length and payload) has the
// same size, at most PIPE_BUF: each write puts a whole frame in the pipe
// at once, so the pipe only ever holds whole frames, and a read of one
// frame's size returns exactly one frame. No buffering: a reader must
// never take more than its frame.
type frameEP struct {
	f   *os.File
	buf []byte // one frame
}

func newFrameEP(f *os.File, size int) *frameEP {
	return &frameEP{f: f, buf: make([]byte, headroom+size)}
}

func (e *frameEP) send(_ context.Context, f []byte) error {
	if len(f) != len(e.buf) {
		return fmt.Errorf("bench: a %d-byte frame on a pipe of %d-byte frames", len(f), len(e.buf))
	}
	binary.LittleEndian.PutUint32(f, uint32(len(f)-headroom))
	_, err := e.f.Write(f)
	return err
}

func (e *frameEP) recv(_ context.Context, p []byte) (int, error) {
	k, err := e.f.Read(e.buf)
	if err != nil {
		return 0, err
	}
	if k != len(e.buf) {
		return 0, fmt.Errorf("bench: read %d bytes of a %d-byte frame (a frame was split)", k, len(e.buf))
	}
	n := int(binary.LittleEndian.Uint32(e.buf))
	if n != len(e.buf)-headroom || n > len(p) {
		return 0, fmt.Errorf("bench: frame length %d in a %d-byte frame for a %d-byte buffer", n, len(e.buf), len(p))
	}
	return copy(p, e.buf[headroom:]), nil
}

func (e *frameEP) interrupt()   { e.f.SetDeadline(time.Unix(1, 0)) }
func (e *frameEP) close() error { return e.f.Close() }

func checkSharedPipe(s cellSpec) error {
	if s.Size+headroom > pipeBuf {
		return unavailable("%d producers x %d consumers on one pipe need frames of at most PIPE_BUF (%d bytes) to stay whole; a %d-byte message makes %d-byte frames",
			s.Producers, s.Consumers, pipeBuf, s.Size, s.Size+headroom)
	}
	return nil
}

// setupSharedPipe creates one pipe for Producers writers in the runner
// (a descriptor each) and Consumers readers in the peer.
func setupSharedPipe(s cellSpec) (*setup, error) {
	if err := checkSharedPipe(s); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	st := &setup{files: []*os.File{r}}
	defer w.Close()
	for range s.Producers {
		// Each writer its own descriptor: an *os.File serializes its
		// writers, as a queue handle does.
		f, err := pollable(w)
		if err != nil {
			st.closeAll()
			return nil, err
		}
		st.eps = append(st.eps, newFrameEP(f, s.Size))
	}
	return st, nil
}

func attachSharedPipe(s cellSpec, files []*os.File) (eps []endpoint, err error) {
	if err := checkSharedPipe(s); err != nil {
		return nil, err
	}
	for range s.Consumers {
		f, err := pollable(files[0])
		if err != nil {
			closeEPs(eps)
			return nil, err
		}
		eps = append(eps, newFrameEP(f, s.Size))
	}
	return eps, nil
}

func setupOSPipe(s cellSpec) (*setup, error) {
	if sharedPipe(s) {
		return setupSharedPipe(s)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if !s.rtt() {
		return &setup{eps: []endpoint{newFramed(w, nil, w)}, files: []*os.File{r}}, nil
	}
	r2, w2, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	return &setup{eps: []endpoint{newFramed(w, r2, w, r2)}, files: []*os.File{r, w2}}, nil
}

// pollable returns an *os.File for an inherited descriptor in non-blocking
// mode, so that its reads and writes park in the Go netpoller as the
// runner's do.
func pollable(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func attachOSPipe(s cellSpec, files []*os.File) ([]endpoint, error) {
	if sharedPipe(s) {
		return attachSharedPipe(s, files)
	}
	r, err := pollable(files[0])
	if err != nil {
		return nil, err
	}
	if !s.rtt() {
		return []endpoint{newFramed(nil, r, r)}, nil
	}
	w, err := pollable(files[1])
	if err != nil {
		r.Close()
		return nil, err
	}
	return []endpoint{newFramed(w, r, r, w)}, nil
}

// msgEP sends one datagram (record) per message.
type msgEP struct{ c net.Conn }

func (e msgEP) send(_ context.Context, f []byte) error {
	n, err := e.c.Write(f[headroom:])
	if err == nil && n != len(f)-headroom {
		err = io.ErrShortWrite
	}
	return err
}
func (e msgEP) recv(_ context.Context, p []byte) (int, error) { return e.c.Read(p) }
func (e msgEP) interrupt()                                    { e.c.SetDeadline(time.Unix(1, 0)) }
func (e msgEP) close() error                                  { return e.c.Close() }

// socketpair returns both ends of an AF_UNIX socket pair, close-on-exec.
func socketpair(typ int) (a, b *os.File, err error) {
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, typ, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "socketpair"), os.NewFile(uintptr(fds[1]), "socketpair"), nil
}

// fileConn makes a net.Conn of a socket file (a duplicate: f stays open).
func fileConn(f *os.File) (net.Conn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("file conn: %w", err)
	}
	return c, nil
}

func setupSocketpair(s cellSpec, typ int) (*setup, error) {
	a, b, err := socketpair(typ)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if typ == syscall.SOCK_SEQPACKET {
		// A record must fit the sender's buffer: raise it when the default
		// is too small (up to net.core.wmem_max).
		for _, f := range []*os.File{a, b} {
			if err := fitSendBuffer(f, s.Size); err != nil {
				b.Close()
				return nil, err
			}
		}
	}
	c, err := fileConn(a)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &setup{eps: []endpoint{socketEP(c, typ == syscall.SOCK_SEQPACKET)}, files: []*os.File{b}}, nil
}

func socketEP(c net.Conn, records bool) endpoint {
	if records {
		return msgEP{c}
	}
	return newFramed(c, c, c)
}

// recordOverhead is what the kernel charges a unix record beyond its
// payload (skb headers); generous.
const recordOverhead = 4 << 10

func fitSendBuffer(f *os.File, size int) error {
	fd := int(f.Fd())
	have, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	if err != nil {
		return err
	}
	need := size + recordOverhead
	if have >= need {
		return nil
	}
	// The kernel doubles the value it is given and caps it at
	// 2*net.core.wmem_max.
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, need)
	if have, err = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF); err != nil {
		return err
	}
	if have < need {
		return unavailable("a %d-byte record exceeds the socket send buffer (%d bytes; raise net.core.wmem_max)", size, have)
	}
	return nil
}

func attachSocket(files []*os.File, records bool) ([]endpoint, error) {
	c, err := fileConn(files[0])
	if err != nil {
		return nil, err
	}
	return []endpoint{socketEP(c, records)}, nil
}

func setupTCP(cellSpec) (*setup, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, unavailable("listen on 127.0.0.1: %v", err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, fmt.Errorf("dial: %w", err)
	}
	r := <-ch
	if r.err != nil {
		dialed.Close()
		return nil, fmt.Errorf("accept: %w", r.err)
	}
	// Go sets TCP_NODELAY on both; the option stays with the socket.
	f, err := r.c.(*net.TCPConn).File()
	r.c.Close()
	if err != nil {
		dialed.Close()
		return nil, err
	}
	return &setup{eps: []endpoint{newFramed(dialed, dialed, dialed)}, files: []*os.File{f}}, nil
}

// ---- Go channel (in-process reference) ----

// chanLink is a bounded channel of message buffers: a sender copies its
// message into a free buffer and sends it; a receiver copies it out and
// frees the buffer. One copy in, one out, like a queue in shared memory.
type chanLink struct {
	data, free chan []byte
}

func newChanLink(size int) *chanLink {
	n := max(4, min(1024, (1<<20)/max(size, 1)))
	l := &chanLink{data: make(chan []byte, n), free: make(chan []byte, n)}
	for range n {
		l.free <- make([]byte, size)
	}
	return l
}

type chanEP struct{ out, in *chanLink }

func (e chanEP) send(ctx context.Context, f []byte) error {
	var b []byte
	select {
	case b = <-e.out.free:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	b = b[:copy(b[:cap(b)], f[headroom:])]
	select {
	case e.out.data <- b:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (e chanEP) recv(ctx context.Context, p []byte) (int, error) {
	var b []byte
	select {
	case b = <-e.in.data:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	if len(b) > len(p) {
		return 0, fmt.Errorf("bench: message of %d bytes for a %d-byte buffer", len(b), len(p))
	}
	n := copy(p, b)
	e.in.free <- b // never blocks: one free slot per buffer
	return n, nil
}

func (e chanEP) interrupt()   {}
func (e chanEP) close() error { return nil }

func setupChan(s cellSpec) (*setup, error) {
	fwd := newChanLink(s.Size)
	st := &setup{}
	if s.rtt() {
		back := newChanLink(s.Size)
		st.eps = []endpoint{chanEP{out: fwd, in: back}}
		st.peer = []endpoint{chanEP{out: back, in: fwd}}
		return st, nil
	}
	for range s.Producers {
		st.eps = append(st.eps, chanEP{out: fwd})
	}
	for range s.Consumers {
		st.peer = append(st.peer, chanEP{in: fwd})
	}
	return st, nil
}
