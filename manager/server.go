package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxConns   = 256
	DefaultMaxPending = 1024
	// maxOutbuf: replies queued for a client that does not read them; past
	// it the connection is cut (bounded memory per connection).
	maxOutbuf = 64 << 20
	// maxPendingBytes bounds the request bodies a connection's blocked
	// calls keep (a blocked Put keeps its value).
	maxPendingBytes = 64 << 20
	// maxFrameLimit caps Options.MaxFrame (the length field is 32 bits).
	maxFrameLimit = 1 << 30
)

// Options configure a server (Serve, Start) and a client (Dial).
type Options struct {
	// Key is the shared secret, at least MinKeyLen bytes. Required.
	Key []byte
	// MaxFrame bounds a frame's length (default DefaultMaxFrame).
	MaxFrame int
	// HandshakeTimeout bounds the handshake (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// IdleTimeout cuts a server connection that sent nothing for this
	// long while no call of it waits (0: never).
	IdleTimeout time.Duration
	// MaxConns bounds the server's connections (default DefaultMaxConns);
	// more are closed at once.
	MaxConns int
	// MaxPending bounds a connection's blocked calls (default
	// DefaultMaxPending).
	MaxPending int
	// NoSharedMemory keeps a unix-socket connection on its socket: a
	// client with it set does not ask to move to a shared-memory Pipe
	// after the handshake, a server with it set refuses. By default a
	// client asks and a server agrees.
	NoSharedMemory bool
}

func (o Options) withDefaults() (Options, error) {
	if len(o.Key) < MinKeyLen {
		return o, fmt.Errorf("%w: a key of at least %d bytes is required", ErrInvalid, MinKeyLen)
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	o.MaxFrame = min(o.MaxFrame, maxFrameLimit)
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	return o, nil
}

// objKey names an object: each type has its own names.
type objKey struct {
	typ  uint8
	name string
}

// Server holds the shared objects and serves them.
type Server struct {
	opts  Options
	mu    sync.Mutex
	objs  map[objKey]*object
	conns map[*sconn]struct{}
	n     atomic.Int32 // connections, authenticated or not
	wg    sync.WaitGroup
	done  chan struct{}
	lns   []net.Listener
}

// NewServer returns a server with no objects, serving nothing yet.
func NewServer(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{opts: o, objs: map[objKey]*object{}, conns: map[*sconn]struct{}{}, done: make(chan struct{})}, nil
}

// Serve serves ln until ctx ends or the server is closed; it then closes
// ln and every connection, and returns once they are gone.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	s, err := NewServer(opts)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln (see the package Serve).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	default:
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				s.wg.Wait()
				return ctx.Err()
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			s.Close()
			s.wg.Wait()
			return err
		}
		tempDelay = 0
		if int(s.n.Add(1)) > s.opts.MaxConns {
			s.n.Add(-1)
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go s.serveConn(conn)
	}
}

// Close stops the server: listeners and connections are closed, blocked
// calls fail with ErrClosed. It does not wait (Serve returns when all is
// gone).
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.conn.Close()
	}
	return nil
}

// lookup finds or creates the object typ/name (each type has its own
// names); n sets the parameters of a new one (a Queue's capacity, a
// Semaphore's value, a Barrier's parties).
// lookup finds an object, creating a missing one: Dict, List, Value,
// Lock, RLock and Event on any use, Queue, Semaphore and Barrier only by
// create (their constructors fix their parameters, from n; any other call
// on one never created is ErrNotFound).
func (s *Server) lookup(typ uint8, name string, n int64, create bool) (*object, error) {
	if typ == 0 || int(typ) >= len(typeNames) {
		return nil, ErrInvalid
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := objKey{typ, name} // a struct key: no string built per call
	o := s.objs[key]
	if o == nil {
		o = newObject(typ)
		switch typ {
		case tQueue, tSemaphore, tBarrier:
			if !create {
				return nil, fmt.Errorf("%w: %s %q was never created", ErrNotFound, typeNames[typ], name)
			}
		}
		switch typ {
		case tQueue:
			o.capacity = int(min(max(n, 0), math.MaxInt32))
		case tSemaphore:
			o.count = max(n, 0)
		case tBarrier:
			if n < 1 || n > math.MaxInt32 {
				return nil, fmt.Errorf("%w: a barrier needs 1 to 2^31-1 parties", ErrInvalid)
			}
			o.parties = int(n)
		}
		s.objs[key] = o
	}
	return o, nil
}

// sconn is one client's connection on the server.
type sconn struct {
	s    *Server
	conn net.Conn

	mu      sync.Mutex
	out     []byte // replies not yet written
	spare   []byte // the buffer last written, reused
	writing bool   // a goroutine is writing out (see reply)
	// holdOut: the reader has more whole requests buffered, and writes
	// the replies queued meanwhile in one go when it has run them (flush).
	holdOut bool
	closed  bool
	pending map[uint64]context.CancelFunc // blocked calls
	// pendingBytes: the request bodies of the blocked calls, which they
	// keep (bounded by maxPendingBytes).
	pendingBytes int
	held         map[*object]struct{} // locks held
}

// hold and drop run under o.mu; two of one connection's calls may be
// granted locks on two objects at once, so c.held has c.mu (lock order:
// o.mu, then c.mu; nothing takes o.mu holding c.mu).
func (c *sconn) hold(o *object) {
	c.mu.Lock()
	c.held[o] = struct{}{}
	c.mu.Unlock()
}

func (c *sconn) drop(o *object) {
	c.mu.Lock()
	delete(c.held, o)
	c.mu.Unlock()
}

func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer s.n.Add(-1)
	defer conn.Close()
	if err := checkPeer(conn); err != nil {
		return
	}
	if err := serverHandshake(conn, s.opts.Key, s.opts.HandshakeTimeout); err != nil {
		return
	}
	conn, err := s.maybeUpgrade(conn)
	if err != nil {
		return
	}
	defer conn.Close()
	c := &sconn{s: s, conn: conn, pending: map[uint64]context.CancelFunc{}, held: map[*object]struct{}{}}
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	var calls sync.WaitGroup
	c.reader(ctx, &calls)
	// The connection is gone: blocked calls end, then its locks are
	// released (marked for their next holders).
	cancel()
	calls.Wait()
	c.mu.Lock()
	c.closed = true
	held := c.held
	c.held = map[*object]struct{}{}
	c.mu.Unlock()
	for o := range held {
		o.ownerGone(c)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (c *sconn) reader(ctx context.Context, calls *sync.WaitGroup) {
	br := bufio.NewReaderSize(c.conn, 64<<10)
	fr := frameReader{r: br, max: c.s.opts.MaxFrame}
	holding := false // the reader's unlocked copy of c.holdOut (only it writes holdOut)
	lastObj := ""    // the last object name, reused (decodeRequestObj)
	for {
		if holding && !wholeFrameBuffered(br) {
			holding = false
			c.mu.Lock()
			c.holdOut = false
			c.writeOut() // unlocks
		}
		if t := c.s.opts.IdleTimeout; t > 0 {
			c.mu.Lock()
			idle := len(c.pending) == 0
			c.mu.Unlock()
			if idle {
				c.conn.SetReadDeadline(time.Now().Add(t))
			} else {
				c.conn.SetReadDeadline(time.Time{})
			}
		}
		f, err := fr.read()
		if err != nil {
			return
		}
		if !holding && wholeFrameBuffered(br) {
			// A pipelining client: its replies go out together.
			holding = true
			c.mu.Lock()
			c.holdOut = true
			c.mu.Unlock()
		}
		switch f.kind {
		case kCall:
			var rq request
			if err := decodeRequestObj(f.body, &rq, &lastObj); err != nil {
				c.reply(f.id, &response{Code: codeOf(ErrInvalid), Msg: "undecodable request: " + err.Error()})
				continue
			}
			c.call(ctx, f.id, &rq, len(f.body), calls)
		case kCancel:
			c.mu.Lock()
			if cancel := c.pending[f.id]; cancel != nil {
				cancel()
			}
			c.mu.Unlock()
		default:
			return // protocol violation: cut
		}
	}
}

// call runs one request: at once if it can complete, else on its own
// goroutine until it can, it is cancelled, or the connection ends.
// mayBlock reports whether rq can wait on the server (a Dict's Get
// cannot; a Queue's can).
func mayBlock(rq *request) bool {
	switch rq.Kind {
	case tQueue:
		return rq.Op == opGet || rq.Op == opPut || rq.Op == opJoin
	case tLock, tRLock, tSemaphore:
		return rq.Op == opAcquire
	case tEvent, tBarrier:
		return rq.Op == opWait
	}
	return false
}

func (c *sconn) call(ctx context.Context, id uint64, rq *request, size int, calls *sync.WaitGroup) {
	o, err := c.s.lookup(rq.Kind, rq.Obj, rq.N, rq.Op == opCreate)
	var rs response
	if err != nil || rq.Op == opCreate {
		c.finish(id, &rs, err)
		return
	}
	// Room for one more blocked call is checked before the call can
	// change anything (a Barrier.Wait arrives in apply): a call refused
	// later would have left its effect behind. The client picks ids; one
	// already waiting is refused, or the two would share one entry and
	// MaxPending would not count them.
	c.mu.Lock()
	_, dup := c.pending[id]
	full := len(c.pending) >= c.s.opts.MaxPending || c.pendingBytes+size > maxPendingBytes
	c.mu.Unlock()
	if dup {
		c.finish(id, &rs, fmt.Errorf("%w: call id %d is already waiting", ErrInvalid, id))
		return
	}
	if full && mayBlock(rq) {
		c.finish(id, &rs, fmt.Errorf("%w: more than %d blocked calls (or %d MiB of them) on one connection", ErrTooLarge, c.s.opts.MaxPending, maxPendingBytes>>20))
		return
	}
	o.mu.Lock()
	err = o.apply(c, rq, &rs)
	// Taken in the same hold as the apply that blocked: a change after
	// it closes this channel, so the waiter cannot miss it.
	ch := o.changed
	o.mu.Unlock()
	if err != errBlock {
		c.finish(id, &rs, err)
		return
	}
	// Only this reader adds to c.pending, so the room checked above is
	// still there.
	c.mu.Lock()
	wctx, cancel := context.WithCancel(ctx)
	c.pending[id] = cancel
	c.pendingBytes += size
	c.mu.Unlock()
	// Copies for the waiting goroutine: the fast path above keeps rq and
	// rs on the reader's stack.
	wrq, wrs := new(request), new(response)
	*wrq, *wrs = *rq, rs
	calls.Add(1)
	go func() {
		defer calls.Done()
		defer cancel()
		err := c.wait(wctx, o, ch, wrq, wrs)
		c.mu.Lock()
		delete(c.pending, id)
		c.pendingBytes -= size
		c.mu.Unlock()
		c.finish(id, wrs, err)
	}()
}

// wait retries rq on o each time o changes, until it completes or ctx
// ends. ch is o.changed as it was when rq last failed to apply, read under
// the same hold of o.mu: re-reading it later would miss a change made in
// between (a lost wakeup: a Lock waiter slept on after the Release).
func (c *sconn) wait(ctx context.Context, o *object, ch chan struct{}, rq *request, rs *response) error {
	for {
		select {
		case <-ch:
		case <-ctx.Done():
			if rq.Kind == tBarrier {
				// A party that stops waiting breaks the barrier, as a
				// timeout does in Python.
				o.mu.Lock()
				o.broken = true
				o.notify()
				o.mu.Unlock()
			}
			return fmt.Errorf("%w: call cancelled", ErrClosed)
		}
		*rs = response{}
		o.mu.Lock()
		err := o.apply(c, rq, rs)
		ch = o.changed
		o.mu.Unlock()
		if err != errBlock {
			return err
		}
	}
}

func (c *sconn) finish(id uint64, rs *response, err error) {
	if err != nil {
		rs.Code = codeOf(err)
		rs.Msg = err.Error()
	}
	c.reply(id, rs)
}

func (c *sconn) reply(id uint64, rs *response) {
	c.mu.Lock()
	if c.closed || len(c.out) > maxOutbuf {
		c.mu.Unlock()
		c.conn.Close() // a client that does not read its replies is cut
		return
	}
	// Encoded straight into the output buffer, under c.mu.
	var ok bool
	c.out, ok = appendFrameWith(c.out, kReply, id, c.s.opts.MaxFrame, func(b []byte) []byte { return appendResponse(b, rs) })
	if !ok {
		tooLarge := response{Code: codeOf(ErrTooLarge), Msg: "reply above the frame limit"}
		c.out, _ = appendFrameWith(c.out, kReply, id, c.s.opts.MaxFrame, func(b []byte) []byte { return appendResponse(b, &tooLarge) })
	}
	if c.holdOut && len(c.out) < 256<<10 {
		c.mu.Unlock() // the reader flushes it with the others
		return
	}
	c.writeOut()
}

// writeOut writes c.out unless a write is in progress (c.mu held; it
// unlocks).
func (c *sconn) writeOut() {
	if c.writing || len(c.out) == 0 {
		c.mu.Unlock() // the writer in progress takes ours along
		return
	}
	// No one writes: we do, here, with every reply that queues up
	// meanwhile (no hand-off to another goroutine on the fast path).
	c.writing = true
	for len(c.out) > 0 {
		buf := c.out
		c.out = c.spare[:0]
		c.mu.Unlock()
		_, err := c.conn.Write(buf)
		c.mu.Lock()
		c.spare = buf
		if err != nil {
			c.out = c.out[:0]
			c.conn.Close()
			break
		}
	}
	c.writing = false
	if cap(c.spare) > 1<<20 {
		c.spare = nil // a burst's buffer is not kept
	}
	c.mu.Unlock()
}
