package bench

// Transports over byte streams and datagrams: OS pipes (one pair, or one
// shared by many writers and readers), stream and seqpacket sockets, TCP
// and Pipe streams, framed by a length prefix where the medium has no
// message boundaries; and the in-process Go channel reference.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

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
