package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// Client is one connection to a server, shared by all its proxies and
// safe for concurrent use. Calls are pipelined: each carries an id, and a
// blocked call (Queue.Get, Lock.Acquire) does not delay the others. A
// broken connection fails every call with ErrClosed; the client does not
// reconnect by itself (see Redial).
type Client struct {
	conn net.Conn
	opts Options

	wlock chan struct{} // cap 1: held while a frame is written (ctx-aware, unlike a mutex)
	wbuf  []byte

	mu      sync.Mutex
	pending map[uint64]waiter
	err     error // set once the connection broke
	nextID  atomic.Uint64
	done    chan struct{}

	// The read turn: whoever holds it reads frames and delivers each
	// reply to its waiter. A caller that finds it free after sending takes
	// it and reads until its own reply has come, so a lone call needs no
	// hand-off between goroutines (each hand-off woke another thread: on a
	// shared-memory Pipe that was most of a round trip). The background
	// reader takes it when calls wait and nobody reads.
	br      *bufio.Reader
	fr      frameReader   // partial frames survive a turn's end
	reading bool          // the turn is taken (c.mu)
	wake    chan struct{} // cap 1: the background reader should look
}

// waiter is a call awaiting its reply; ch nil: its caller gave up (ctx),
// and a late success is undone (see undo).
type waiter struct {
	ch   chan<- result
	kind uint8
	op   uint8
	obj  string
	// A batched call's reply goes to b.res[i]; the last one of the batch
	// signals b.done (one wakeup per batch, not per call).
	b *batchWait
	i int
}

// batchWait collects the replies of one callMany.
type batchWait struct {
	res  []result
	left int // replies still to come (c.mu)
	done chan struct{}
}

// deliver hands r to w's caller (c.mu held); false if nobody waits.
func (w waiter) deliver(r result) bool {
	switch {
	case w.b != nil:
		w.b.res[w.i] = r
		if w.b.left--; w.b.left == 0 {
			close(w.b.done)
		}
		return true
	case w.ch != nil:
		w.ch <- r // buffered: never blocks
		return true
	}
	return false
}

type result struct {
	rs  response
	err error
}

// Dial connects to the server at addr and authenticates. addr is
// "unix:PATH" (or a path with a '/'), or "tcp:HOST:PORT" (or HOST:PORT).
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	network, a := splitAddr(addr)
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, a)
	if err != nil {
		return nil, err
	}
	return NewClient(ctx, conn, o)
}

func splitAddr(addr string) (network, a string) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "tcp:"):
		return "tcp", strings.TrimPrefix(addr, "tcp:")
	case strings.Contains(addr, "/"):
		return "unix", addr
	}
	return "tcp", addr
}

// NewClient authenticates over conn (any net.Conn) and returns a client
// that owns it.
func NewClient(ctx context.Context, conn net.Conn, opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		conn.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = clientHandshake(conn, o.Key, o.HandshakeTimeout)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	if uc, ok := conn.(*net.UnixConn); ok && !o.NoSharedMemory {
		p, err := clientUpgrade(uc, o.HandshakeTimeout)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if p != nil {
			conn = p
		}
	}
	c := &Client{conn: conn, opts: o, pending: map[uint64]waiter{}, done: make(chan struct{}), wake: make(chan struct{}, 1),
		wlock: make(chan struct{}, 1)}
	c.br = bufio.NewReaderSize(conn, 64<<10)
	c.fr = frameReader{r: c.br, max: o.MaxFrame}
	go c.reader()
	return c, nil
}

// Close closes the connection; calls in flight fail with ErrClosed, and
// the server releases the locks this client held.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	return nil
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	p := c.pending
	c.pending = map[uint64]waiter{}
	c.mu.Unlock()
	c.conn.Close()
	c.mu.Lock() // deliver's batch counts are under c.mu
	for _, w := range p {
		w.deliver(result{err: ErrClosed})
	}
	c.mu.Unlock()
}

var resultChans = sync.Pool{New: func() any { return make(chan result, 1) }}

// call sends rq and waits for its reply, or for ctx: then the server is
// told to stop waiting for it, and ctx's error is returned.
func (c *Client) call(ctx context.Context, rq *request) (response, error) {
	ch := resultChans.Get().(chan result)
	id := c.nextID.Add(1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		resultChans.Put(ch)
		return response{}, c.err
	}
	c.pending[id] = waiter{ch: ch, kind: rq.Kind, op: rq.Op, obj: rq.Obj}
	c.mu.Unlock()
	err := c.sendCall(ctx, id, rq)
	if errors.Is(err, ErrTooLarge) || err == errNotSent {
		c.mu.Lock()
		_, waiting := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if !waiting {
			<-ch // the connection failed meanwhile and told ch
		}
		resultChans.Put(ch)
		if err == errNotSent {
			return response{}, ctx.Err()
		}
		return response{}, err
	} else if err != nil {
		c.fail(err) // tells ch, among the others
	}
	if err == nil && c.takeTurn(false) {
		if c.readFor(ctx, func() bool { return len(ch) > 0 }) != nil && ctx.Err() != nil {
			return c.abandon(ctx, id, ch)
		}
		r := <-ch // delivered, or the connection failed and told ch
		resultChans.Put(ch)
		return r.rs, r.err
	}
	select {
	case r := <-ch:
		resultChans.Put(ch)
		return r.rs, r.err
	case <-ctx.Done():
		return c.abandon(ctx, id, ch)
	}
}

// abandon ends call id whose caller's ctx ended: a reply already in ch is
// reported if the call took effect; otherwise the server is told to stop
// and a late success will be undone.
func (c *Client) abandon(ctx context.Context, id uint64, ch chan result) (response, error) {
	c.mu.Lock()
	w, waiting := c.pending[id]
	if waiting {
		w.ch = nil // abandoned: a late success is undone
		c.pending[id] = w
	}
	c.mu.Unlock()
	if !waiting { // the reply (or the failure) is in ch already
		r := <-ch
		resultChans.Put(ch)
		if completed(r) {
			return r.rs, r.err // it completed: report it rather than lose it
		}
	} else {
		// Not waited for: the caller's ctx has ended, and the write turn
		// may be held by a write the server is not reading.
		go c.send(kCancel, id, nil)
	}
	return response{}, ctx.Err()
}

// completed reports whether a reply means the call took effect: success,
// or a lock acquired from a dead holder (ErrOwnerDead is an error that
// carries the lock).
func completed(r result) bool { return r.err == nil || errors.Is(r.err, ErrOwnerDead) }

// undo reverses a call whose caller gave up but which succeeded on the
// server anyway: an acquired lock or semaphore (Acquire, or a TryAcquire
// that got it) is released, a message got from a queue (Get or TryGet) is
// put back at its head. (A Put that succeeded stays put, as a sent
// message does.)
func (c *Client) undo(w waiter, rs response) {
	ctx := context.Background()
	lock := w.kind == tLock || w.kind == tRLock || w.kind == tSemaphore
	switch {
	case lock && (w.op == opAcquire || w.op == opTryAcquire && rs.OK):
		c.call(ctx, &request{Op: opRelease, Kind: w.kind, Obj: w.obj})
	case w.kind == tQueue && (w.op == opGet || w.op == opTryGet):
		c.call(ctx, &request{Op: opUnget, Kind: tQueue, Obj: w.obj, Val: rs.Val})
	}
}

// callMany sends every request in one write and waits for all replies (or
// ctx: then the ones still waiting are abandoned as in call).
func (c *Client) callMany(ctx context.Context, reqs []*request) ([]result, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ids := make([]uint64, len(reqs))
	var buf []byte
	for i, rq := range reqs {
		ids[i] = c.nextID.Add(1)
		var ok bool
		if buf, ok = appendFrameWith(buf, kCall, ids[i], c.opts.MaxFrame, func(b []byte) []byte { return appendRequest(b, rq) }); !ok {
			return nil, fmt.Errorf("%w: request %d above the frame limit %d", ErrTooLarge, i, c.opts.MaxFrame)
		}
	}
	bw := &batchWait{res: make([]result, len(reqs)), left: len(reqs), done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	for i, rq := range reqs {
		c.pending[ids[i]] = waiter{kind: rq.Kind, op: rq.Op, obj: rq.Obj, b: bw, i: i}
	}
	c.mu.Unlock()
	if len(buf) > bigWrite {
		// The server may stop reading our requests while its replies to
		// the first ones wait to be read: someone must read while we
		// write, or both sides block writing.
		c.kickReader()
	}
	err := c.lockWrite(ctx)
	if err == nil {
		err = c.writeUnlock(ctx, buf)
	}
	if err == errNotSent { // ctx ended waiting to write: nothing went out
		c.mu.Lock()
		for _, id := range ids {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
	if err != nil {
		c.fail(err) // writeUnlock's errors are ErrClosed already
	}
	finished := func() bool {
		select {
		case <-bw.done:
			return true
		default:
			return false
		}
	}
	if err == nil && c.takeTurn(false) {
		if c.readFor(ctx, finished) != nil && ctx.Err() != nil {
			return c.abandonBatch(ctx, ids, bw)
		}
		<-bw.done // delivered, or the connection failed and told the batch
		return bw.res, nil
	}
	select {
	case <-bw.done:
		return bw.res, nil
	case <-ctx.Done():
		return c.abandonBatch(ctx, ids, bw)
	}
}

// abandonBatch ends a batch whose caller's ctx ended, as abandon does
// each call: the replies that came are reported (a Put that took effect
// must not look failed), the others get ctx's error.
func (c *Client) abandonBatch(ctx context.Context, ids []uint64, bw *batchWait) ([]result, error) {
	c.mu.Lock()
	var cancels []uint64
	for i, id := range ids {
		if w, ok := c.pending[id]; ok {
			w.b = nil // abandoned: a late success is undone
			c.pending[id] = w
			cancels = append(cancels, id)
			bw.res[i] = result{err: ctx.Err()}
		}
	}
	c.mu.Unlock()
	if len(cancels) == 0 { // every reply came meanwhile
		<-bw.done
		return bw.res, nil
	}
	go func() { // not waited for, as in abandon
		for _, id := range cancels {
			c.send(kCancel, id, nil)
		}
	}()
	return bw.res, ctx.Err()
}
