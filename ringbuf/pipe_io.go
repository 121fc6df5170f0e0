package ringbuf

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// ---- turns ----

// ensureClaimed takes the sides on first use (end B of NewPipe).
func (c *Conn) ensureClaimed() error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if !c.claimed.Load() {
		return c.claim()
	}
	return nil
}

// begin starts a call in direction d: it claims the sides if not yet done
// and takes d's turn, waiting for a sibling until ctx ends or Close.
func (c *Conn) begin(ctx context.Context, d *direction) error {
	if err := c.ensureClaimed(); err != nil {
		return err
	}
	if !d.gate.TryEnter() {
		if err := d.gate.Enter(ctx, c.done); err != nil {
			if errors.Is(err, futex.ErrClosed) {
				return net.ErrClosed
			}
			return err
		}
	}
	if c.closed.Load() {
		d.gate.Leave()
		return net.ErrClosed
	}
	if b := c.broken.Load(); b != nil {
		d.gate.Leave()
		return *b
	}
	return nil
}

func (c *Conn) fail(err error) error {
	c.broken.CompareAndSwap(nil, &err)
	return *c.broken.Load()
}

// catch is Queue.catch for a pipe end on a named segment.
func (c *Conn) catch(err *error, old bool) {
	r := recover()
	restorePanicOnFault(old)
	if r != nil {
		*err = c.fail(faultError(c.seg, r))
	}
}

// ---- waiting ----

// waiter is the state of one blocked call.
type waiter struct {
	d        *direction
	ctx      context.Context // the caller's
	producer bool
	peerRole *atomic.Uint32 // the peer's role word in the ring we wait on
	deadline bool           // the direction's deadline applies
	stop     time.Time      // Poll's bound (zero: none)
	dead     bool           // the peer was proven dead; the ring was looked at once more
}

// errStop: Poll's timeout passed.
var errStop = errors.New("ringbuf: poll timeout")

// block waits until the ring may have changed. nil means look again; an
// error ends the call. The caller holds the direction's turn.
func (c *Conn) block(w *waiter) error {
	if w.dead {
		return ErrPeerDead
	}
	// Clear the flag before reading the state it announces changes of.
	w.d.intr.Store(false)
	if c.closed.Load() {
		return net.ErrClosed
	}
	now := sinceEpoch()
	limit := now + int64(c.slice)
	if w.deadline {
		d := w.d.deadline.Load()
		if d != noDeadline && now >= d {
			return os.ErrDeadlineExceeded
		}
		limit = min(limit, d)
	}
	lim := pipeEpoch.Add(time.Duration(limit))
	if !w.stop.IsZero() {
		if !pipeEpoch.Add(time.Duration(now)).Before(w.stop) {
			return errStop
		}
		if w.stop.Before(lim) {
			lim = w.stop
		}
	}
	ring, want := c.r, 0
	if w.producer {
		ring, want = c.w, int(c.want)
	}
	key, _ := ring.waitKey(w.producer)
	err := w.d.ec.Wait(w.ctx, lim, &w.d.spin, func() bool {
		return ring.ready(w.producer, want, key) || w.d.intr.Load() || c.closed.Load()
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, futex.ErrTimeout):
		// A slice (or the deadline) ended: is the peer still there? Any
		// value of the role word is safe to ask about (Alive bounds-checks
		// the slot); 0 means the peer has not attached.
		if t := shm.Token(w.peerRole.Load()); t != 0 && !c.seg.Alive(t) {
			w.dead = true
		}
		return nil
	case errors.Is(err, shm.ErrClosed):
		return net.ErrClosed
	case errors.Is(err, futex.ErrFutex):
		return c.fail(corruptf("futex: %v", err))
	}
	return err // the caller's ctx ended
}

// ---- writing ----

// Write writes p as messages of at most MaxMessage bytes, waiting for room
// as needed. It returns len(p), or how much was written and why it
// stopped: the write deadline (os.ErrDeadlineExceeded), a closed pipe (an
// error matching ErrClosed and io.ErrClosedPipe), a dead peer
// (ErrPeerDead), or this end's Close (net.ErrClosed).
func (c *Conn) Write(p []byte) (n int, err error) {
	ctx := context.Background()
	if err := c.begin(ctx, &c.wr); err != nil {
		return 0, err
	}
	defer c.wr.gate.Leave()
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	if c.wr.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	w := waiter{d: &c.wr, ctx: ctx, producer: true, peerRole: c.w.crole, deadline: true}
	for n < len(p) {
		k := min(len(p)-n, c.chunk)
		err := c.sendOnce(p[n : n+k])
		if err == nil {
			n += k
			continue
		}
		if err != ErrFull {
			return n, err
		}
		c.want = uint64(k)
		if err := c.block(&w); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Send sends msg as one message, waiting for room until ctx ends, the
// write deadline passes, or the pipe closes. A message longer than
// MaxMessage fails with ErrTooLarge.
func (c *Conn) Send(ctx context.Context, msg []byte) (err error) {
	if len(msg) > c.out.maxMsg {
		return ErrTooLarge
	}
	if err := c.begin(ctx, &c.wr); err != nil {
		return err
	}
	defer c.wr.gate.Leave()
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	if c.wr.expired() {
		return os.ErrDeadlineExceeded
	}
	w := waiter{d: &c.wr, ctx: ctx, producer: true, peerRole: c.w.crole, deadline: true}
	for {
		err := c.sendOnce(msg)
		if err != ErrFull {
			return err
		}
		c.want = uint64(len(msg))
		if err := c.block(&w); err != nil {
			return err
		}
	}
}

// sendOnce puts msg if it fits now. The caller holds the write turn.
func (c *Conn) sendOnce(msg []byte) error {
	buf, err := c.w.reserve(len(msg))
	if err == nil {
		copy(buf, msg)
		err = c.w.commit(len(msg))
	}
	switch {
	case err == nil:
		c.out.stats.add(sPuts, 1)
		c.out.stats.add(sBytesIn, uint64(len(msg)))
		if c.out.notEmpty.Notify(1) {
			c.out.stats.add(sWakeups, 1)
		}
		return nil
	case err == ErrClosed:
		return errWriteClosed
	case errors.Is(err, ErrCorrupt):
		return c.fail(err)
	}
	return err
}

// ---- reading ----

// Read reads bytes of the incoming messages into p. It waits for a
// message unless one is there; it returns io.EOF once the peer closed and
// everything was read, ErrPeerDead if the peer died, an error matching
// os.ErrDeadlineExceeded past the read deadline, and net.ErrClosed after
// Close.
func (c *Conn) Read(p []byte) (n int, err error) {
	ctx := context.Background()
	if err := c.begin(ctx, &c.rd); err != nil {
		return 0, err
	}
	defer c.rd.gate.Leave()
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	if c.rd.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) == 0 {
		return 0, nil
	}
	w := c.readWaiter(ctx)
	for {
		n, err := c.tryRead(p)
		if err != ErrEmpty {
			return n, err
		}
		if err := c.block(&w); err != nil {
			return 0, err
		}
	}
}

// Recv returns the next message (the rest of it, after a partial Read),
// waiting until ctx ends or the read deadline passes. It returns io.EOF
// once the peer closed and every message was read.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	out, _, err := c.recv(ctx, nil, true)
	return out, err
}

// RecvInto copies the next message into buf and returns its length. It
// does not allocate. If buf is too short it returns ErrShortBuffer and
// leaves the message in the pipe.
func (c *Conn) RecvInto(ctx context.Context, buf []byte) (int, error) {
	_, n, err := c.recv(ctx, buf, false)
	return n, err
}

func (c *Conn) recv(ctx context.Context, buf []byte, alloc bool) (out []byte, n int, err error) {
	if err := c.begin(ctx, &c.rd); err != nil {
		return nil, 0, err
	}
	defer c.rd.gate.Leave()
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	if c.rd.expired() {
		return nil, 0, os.ErrDeadlineExceeded
	}
	w := c.readWaiter(ctx)
	for {
		out, n, err := c.tryRecv(buf, alloc)
		if err != ErrEmpty {
			return out, n, err
		}
		if err := c.block(&w); err != nil {
			return nil, 0, err
		}
	}
}

// Poll reports whether a message is ready to read, waiting up to timeout
// for one (a negative timeout waits without bound). It returns io.EOF if
// the peer closed and nothing is left, and ErrPeerDead if it finds, while
// waiting, that the peer died. The read deadline does not apply.
func (c *Conn) Poll(timeout time.Duration) (ok bool, err error) {
	ctx := context.Background()
	if err := c.begin(ctx, &c.rd); err != nil {
		return false, err
	}
	defer c.rd.gate.Leave()
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	w := c.readWaiter(ctx)
	w.deadline = false
	if timeout >= 0 {
		w.stop = time.Now().Add(timeout)
	}
	for {
		_, err := c.r.next(-1)
		if err == nil {
			return true, nil // left in place for the next read
		}
		if err != ErrEmpty {
			return false, c.readErr(err)
		}
		if timeout == 0 {
			return false, nil
		}
		if err := c.block(&w); err != nil {
			if err == errStop {
				return false, nil
			}
			return false, err
		}
	}
}

func (c *Conn) readWaiter(ctx context.Context) waiter {
	return waiter{d: &c.rd, ctx: ctx, peerRole: c.r.prole, deadline: true}
}

func (c *Conn) readErr(err error) error {
	if err == ErrEmpty || err == ErrClosed {
		// Caught up: publish what was consumed and wake a writer that
		// waits for the room.
		if c.r.release(false) && c.in.notFull.Notify(1) {
			c.in.stats.add(sWakeups, 1)
		}
	}
	switch {
	case err == ErrClosed:
		return io.EOF
	case errors.Is(err, ErrCorrupt):
		return c.fail(err)
	}
	return err
}

// rest returns the unread part of msg, or an error if the record shrank
// under a partial read (only a corrupting peer can do that).
func (c *Conn) rest(msg []byte) ([]byte, error) {
	if c.roff > len(msg) {
		return nil, c.fail(corruptf("message of %d bytes under a read offset of %d", len(msg), c.roff))
	}
	return msg[c.roff:], nil
}

// tryRead copies what is there, up to len(p) bytes, across as many
// messages as it takes, and frees the messages it finished at once. The
// caller holds the read turn.
func (c *Conn) tryRead(p []byte) (int, error) {
	n, k, bytes := 0, 0, 0
	var err error
	for n < len(p) {
		var msg, rest []byte
		if msg, err = c.r.next(-1); err != nil {
			break
		}
		if rest, err = c.rest(msg); err != nil {
			break
		}
		m := copy(p[n:], rest)
		n += m
		if m < len(rest) {
			c.roff += m
			break
		}
		c.roff = 0
		c.r.consume()
		k++
		bytes += len(msg)
	}
	if k > 0 {
		c.consumed(k, bytes)
	}
	if n > 0 {
		return n, nil
	}
	return 0, c.readErr(err)
}

func (c *Conn) tryRecv(buf []byte, alloc bool) ([]byte, int, error) {
	msg, err := c.r.next(-1)
	if err != nil {
		return nil, 0, c.readErr(err)
	}
	rest, err := c.rest(msg)
	if err != nil {
		return nil, 0, err
	}
	var out []byte
	if alloc {
		out = make([]byte, len(rest))
		copy(out, rest)
	} else {
		if len(buf) < len(rest) {
			return nil, 0, ErrShortBuffer
		}
		copy(buf, rest)
	}
	c.roff = 0
	c.r.consume()
	c.consumed(1, len(msg))
	return out, len(rest), nil
}

// consumed frees what was read and wakes the peer if it waits for room.
func (c *Conn) consumed(k, bytes int) {
	c.in.stats.add(sGets, uint64(k))
	c.in.stats.add(sBytesOut, uint64(bytes))
	if c.r.release(c.in.notFull.Waiting()) && c.in.notFull.Notify(k) {
		c.in.stats.add(sWakeups, 1)
	}
}
