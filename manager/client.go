package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// reader is the background reader: it reads while calls wait and no
// caller reads.
func (c *Client) reader() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		if !c.takeTurn(true) {
			continue
		}
		for {
			f, err := c.fr.read()
			if err != nil {
				c.fail(fmt.Errorf("%w: %v", ErrClosed, err))
				c.releaseTurn()
				return
			}
			woke, err := c.dispatch(f)
			if err != nil {
				c.fail(err)
				c.releaseTurn()
				return
			}
			c.mu.Lock()
			idle := len(c.pending) == 0
			if idle {
				c.reading = false
			}
			c.mu.Unlock()
			if idle {
				break
			}
			if woke && !wholeFrameBuffered(c.br) {
				// Let the caller run now: our next Read may spin or sleep
				// in a futex (a shared-memory Pipe), keeping this P from it.
				runtime.Gosched()
			}
		}
	}
}

// takeTurn takes the read turn if it is free (and, for the background
// reader, someone waits).
func (c *Client) takeTurn(background bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading || c.err != nil || background && len(c.pending) == 0 {
		return false
	}
	c.reading = true
	return true
}

// bigWrite is the largest write that needs no reader meanwhile: one the
// connection's buffers take whole even if the server stops reading (unix
// and loopback TCP sockets buffer more; the Pipe 1 MiB).
const bigWrite = 16 << 10

// kickReader has the background reader take the turn if it is free.
func (c *Client) kickReader() {
	select {
	case c.wake <- struct{}{}:
	default: // already told
	}
}

// releaseTurn gives the turn up; if calls still wait, the background
// reader takes it.
func (c *Client) releaseTurn() {
	c.mu.Lock()
	c.reading = false
	need := len(c.pending) > 0 && c.err == nil
	c.mu.Unlock()
	if need {
		c.kickReader()
	}
}

// readFor reads and delivers frames with the turn held until mine
// reports the caller's reply delivered (nil), ctx ends (its error; the
// turn is given up at a frame boundary or mid-frame, losing nothing), or
// the connection fails (ErrClosed; every waiter has been told). It gives
// the turn up.
func (c *Client) readFor(ctx context.Context, mine func() bool) error {
	defer c.releaseTurn()
	var interrupted chan struct{}
	if ctx.Done() != nil {
		interrupted = make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.conn.SetReadDeadline(aLongTimeAgo)
			close(interrupted)
		})
		defer func() {
			if !stop() { // it ran, or runs: undo its deadline before the next turn
				<-interrupted
				c.conn.SetReadDeadline(time.Time{})
			}
		}()
	}
	for !mine() {
		f, err := c.fr.read()
		if err != nil {
			if interrupted != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				// Only our ctx's AfterFunc sets a deadline (a turn's
				// holder clears its own before giving the turn up); it
				// may not have closed interrupted yet. Should anything
				// else ever set one, fail rather than wait for ever.
				select {
				case <-interrupted:
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
			err = fmt.Errorf("%w: %v", ErrClosed, err)
			c.fail(err)
			return err
		}
		if _, err := c.dispatch(f); err != nil {
			c.fail(err)
			return err
		}
	}
	return nil
}

// aLongTimeAgo is a read deadline in the past: it interrupts a Read.
var aLongTimeAgo = time.Unix(1, 0)

// dispatch delivers one frame's reply; woke reports that it completed a
// caller's wait.
func (c *Client) dispatch(f frame) (woke bool, err error) {
	if f.kind != kReply {
		return false, fmt.Errorf("%w: frame kind %d from the server", ErrProtocol, f.kind)
	}
	var r result
	if err := decodeResponse(f.body, &r.rs); err != nil {
		r.err = fmt.Errorf("%w: undecodable reply: %v", ErrProtocol, err)
	} else if r.rs.Code != 0 {
		r.err = &RemoteError{Code: r.rs.Code, Msg: r.rs.Msg}
	}
	c.mu.Lock()
	w, ok := c.pending[f.id]
	delete(c.pending, f.id)
	delivered := ok && w.deliver(r)
	woke = delivered && (w.b == nil || w.b.left == 0)
	c.mu.Unlock()
	if ok && !delivered && completed(r) {
		go c.undo(w, r.rs)
	}
	return woke, nil
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
	done := ctx.Done()
	if err == nil && c.takeTurn(false) {
		if c.readFor(ctx, func() bool { return len(ch) > 0 }) == nil || ctx.Err() == nil {
			r := <-ch // delivered, or the connection failed and told ch
			resultChans.Put(ch)
			return r.rs, r.err
		}
		closed := make(chan struct{})
		close(closed)
		done = closed // ctx ended: give up as below
	}
	select {
	case r := <-ch:
		resultChans.Put(ch)
		return r.rs, r.err
	case <-done:
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
			// Not waited for: the caller's ctx has ended, and the write
			// turn may be held by a write the server is not reading.
			go c.send(kCancel, id, nil)
		}
		return response{}, ctx.Err()
	}
}

// errNotSent: the caller's ctx ended before its frame was written
// (waiting for another writer); nothing of it went out.
var errNotSent = errors.New("not sent")

// lockWrite takes the write turn, or gives up when ctx ends or the
// client closes (a server that stops reading must not hold a caller
// whose ctx has ended behind another's write).
func (c *Client) lockWrite(ctx context.Context) error {
	select {
	case c.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return errNotSent
	case <-c.done:
		return ErrClosed
	}
}

func (c *Client) unlockWrite() { <-c.wlock }

// writeUnlock writes buf with the write turn held, and gives the turn
// up. If ctx ends first the write is interrupted (a write deadline) and
// what is left of it is finished by a goroutine that keeps the turn until
// then, so the caller returns at once and the stream stays whole (a
// server that is not reading holds that goroutine, not the caller).
func (c *Client) writeUnlock(ctx context.Context, buf []byte) error {
	if ctx.Done() == nil {
		defer c.unlockWrite()
		if _, err := c.conn.Write(buf); err != nil {
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return nil
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetWriteDeadline(aLongTimeAgo)
		close(fired)
	})
	n, err := c.conn.Write(buf)
	cut := false
	if !stop() { // it ran, or runs: undo its deadline
		<-fired
		c.conn.SetWriteDeadline(time.Time{})
		cut = err != nil
	}
	if !cut {
		c.unlockWrite()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrClosed, err)
		}
		return nil
	}
	rest := append([]byte(nil), buf[n:]...)
	go func() {
		defer c.unlockWrite()
		if _, err := c.conn.Write(rest); err != nil {
			c.fail(fmt.Errorf("%w: %v", ErrClosed, err))
		}
	}()
	return nil // it will be sent: the caller's wait sees its ctx ended
}

// sendCall writes rq's frame; a frame above the limit is not sent
// (ErrTooLarge), nor one whose ctx ended while another frame was being
// written (errNotSent); a failed write is the connection's failure.
func (c *Client) sendCall(ctx context.Context, id uint64, rq *request) error {
	if err := c.lockWrite(ctx); err != nil {
		return err
	}
	var ok bool
	c.wbuf, ok = appendFrameWith(c.wbuf[:0], kCall, id, c.opts.MaxFrame, func(b []byte) []byte { return appendRequest(b, rq) })
	if !ok {
		c.unlockWrite()
		return fmt.Errorf("%w: request above the frame limit %d", ErrTooLarge, c.opts.MaxFrame)
	}
	return c.writeUnlock(ctx, c.wbuf)
}

// send writes one frame, waiting for the write turn as long as the
// client lives.
func (c *Client) send(kind byte, id uint64, body []byte) error {
	if err := c.lockWrite(context.Background()); err != nil {
		return err
	}
	c.wbuf = appendFrame(c.wbuf[:0], kind, id, body)
	return c.writeUnlock(context.Background(), c.wbuf)
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
		c.fail(fmt.Errorf("%w: %v", ErrClosed, err))
	}
	finished := func() bool {
		select {
		case <-bw.done:
			return true
		default:
			return false
		}
	}
	done := ctx.Done()
	if err == nil && c.takeTurn(false) {
		if c.readFor(ctx, finished) == nil || ctx.Err() == nil {
			<-bw.done // delivered, or the connection failed and told the batch
			return bw.res, nil
		}
		closed := make(chan struct{})
		close(closed)
		done = closed
	}
	select {
	case <-bw.done:
		return bw.res, nil
	case <-done:
		c.mu.Lock()
		var cancels []uint64
		for _, id := range ids {
			if w, ok := c.pending[id]; ok {
				w.b = nil // abandoned: a late success is undone
				c.pending[id] = w
				cancels = append(cancels, id)
			}
		}
		c.mu.Unlock()
		if len(cancels) == 0 { // every reply came meanwhile: report them, lose none
			<-bw.done
			return bw.res, nil
		}
		go func() { // not waited for, as in call
			for _, id := range cancels {
				c.send(kCancel, id, nil)
			}
		}()
		return nil, ctx.Err()
	}
}
