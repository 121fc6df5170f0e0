package ringbuf

// Pipe: a duplex connection of two SPSC queues in one segment.
//
// The segment holds queue "ab." (end A produces, end B consumes) and queue
// "ba." (B produces, A consumes). Each end is a Conn: a handle on both
// queues through its own attachment of the segment, so each end has its own
// participant token. An end claims its two SPSC sides (the cProducer word of
// the queue it writes, the cConsumer word of the queue it reads) when it is
// opened (CreatePipe, OpenPipe, OpenPipeFile, end A of NewPipe) or, for end
// B of NewPipe, on first use: that end is usually handed to a child with
// File and closed unused, and the child then takes the sides.
//
// Closing: CloseWrite sets the closed flag of the queue this end writes;
// the peer reads what was published, then io.EOF. Close sets both flags, so
// the peer's writes fail too. The queues' Close wakes sleepers in every
// process.
//
// Liveness: the peer's token is the role word of the queue side it holds
// (the producer of the queue we read, the consumer of the queue we write).
// A zero word means the peer has not attached yet: absent, not dead. A
// blocked call sleeps in slices of pollSlice; after each slice that ends
// without progress it asks the kernel (shm.Segment.Alive) whether the peer
// lives. Once it is proven dead the call looks at the ring once more (what
// the peer published before dying is delivered) and then fails with
// ErrPeerDead. A Write that fits in the ring succeeds even if the peer has
// died, as a socket's send buffer does; the first one that must wait fails.
//
// Deadlines (net.Conn) are stored per direction as monotonic nanoseconds
// since pipeEpoch. A blocked call clears its side's interrupt flag, reads
// the deadline, and sleeps on the ring's notifier with the flag among the
// things it waits for; SetDeadline stores the deadline, sets the flag and
// wakes the notifier (the notifier's protocol, see notify.go, with the
// flag as what is published). So the call either reads the new deadline or
// is woken to read it: a deadline moved while a call is blocked takes
// effect at once, and no context is allocated for it.
//
// Unmapping: every call that touches the segment holds a Pin on it; Close
// sets its flag, closes the queues (waking local sleepers), and closes the
// segment, which wakes what still sleeps and waits for the pins to go.

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	pipeAB = "ab." // written by end A, read by end B
	pipeBA = "ba." // written by end B, read by end A
	// pipeParticipants bounds the processes attached at once: the two
	// ends, a creator's unused end B, and a few inspectors.
	pipeParticipants = 8
	// pollSlice is how long a blocked call sleeps before it asks the kernel
	// whether the peer is alive.
	pollSlice = 50 * time.Millisecond
	// noDeadline is the stored deadline of a side without one.
	noDeadline = math.MaxInt64
)

// pipeEpoch is the origin of stored deadlines; its monotonic reading makes
// deadlines immune to wall-clock steps. It is never written after init.
var pipeEpoch = time.Now()

// errWriteClosed: a write to a pipe whose reader closed it, or after this
// end's CloseWrite. It matches ErrClosed and io.ErrClosedPipe.
var errWriteClosed error = &pipeError{"ringbuf: write on closed pipe", []error{ErrClosed, io.ErrClosedPipe}}

type pipeError struct {
	msg  string
	errs []error
}

func (e *pipeError) Error() string   { return e.msg }
func (e *pipeError) Unwrap() []error { return e.errs }

// PipeOptions configure a Pipe. Capacity, MaxMessage and the defaults are
// as in Options (SPSC) and apply to each direction; they are recorded in
// the segment. Spin and BusyPoll apply to the ends made by the call that
// takes them; an end opened with OpenPipe or OpenPipeFile uses the defaults.
type PipeOptions struct {
	Capacity   int
	MaxMessage int
	Spin       time.Duration
	BusyPoll   bool
}

func (o PipeOptions) queue() Options {
	return Options{Mode: SPSC, Capacity: o.Capacity, MaxMessage: o.MaxMessage, Spin: o.Spin, BusyPoll: o.BusyPoll, Participants: pipeParticipants}
}

// PipeAddr is the address of both ends of a pipe: network "shmkit", and the
// pipe's name or "anonymous".
type PipeAddr struct{ Name string }

// Network returns "shmkit".
func (a PipeAddr) Network() string { return "shmkit" }

func (a PipeAddr) String() string {
	if a.Name == "" {
		return "anonymous"
	}
	return a.Name
}

// Conn is one end of a Pipe: a duplex connection between two processes
// (or goroutines) over shared memory.
//
// In message mode Send and Recv carry whole messages of up to MaxMessage
// bytes. In stream mode it is a net.Conn: Write splits bytes into messages
// of at most MaxMessage and Read returns bytes, keeping the rest of a
// partly read message for the next Read, so protocols written for sockets
// (net/rpc, net/http, TLS) run over it unchanged. Mixing modes on one
// direction is allowed: a Recv after a partial Read returns the rest of
// that message, and Read skips empty messages.
//
// All methods are safe for concurrent use; reads are serialized with each
// other, and so are writes. Send, RecvInto, Read and Write do not allocate,
// also when they wait, unless the ctx of a waiting Send or RecvInto can be
// cancelled.
type Conn struct {
	seg   *shm.Segment
	out   *Queue // this end produces
	in    *Queue // this end consumes
	addr  net.Addr
	chunk int           // largest message Write makes
	slice time.Duration // pollSlice; tests lengthen it

	claimMu sync.Mutex
	claimed atomic.Bool // both sides taken; set under claimMu

	r side // readers: Read, Recv, RecvInto, Poll
	w side // writers: Write, Send

	roff      int    // bytes of the current incoming message already read; under r.op
	want      uint64 // payload size a blocked writer waits room for; under w.op
	readReady func() bool
	roomReady func() bool

	closed atomic.Bool
}

var (
	_ net.Conn           = (*Conn)(nil)
	_ io.ReadWriteCloser = (*Conn)(nil)
)

// side is one direction's call state.
type side struct {
	op       sync.Mutex   // serializes this direction's calls
	deadline atomic.Int64 // nanoseconds since pipeEpoch; noDeadline if none
	intr     atomic.Bool  // set by SetDeadline and Close: a blocked call re-reads its state
	seg      *shm.Segment
	n        *notifier // what this side's blocked calls sleep on
}

// NewPipe creates an anonymous pipe (a memfd) and returns both ends. To
// give end B to a child process, pass b.File() to it (it calls
// OpenPipeFile) and close b unused: an end that was never used takes its
// sides only when first used, and closing it then only detaches.
func NewPipe(opts PipeOptions) (a, b *Conn, err error) {
	o := opts.queue()
	if err := o.fill(); err != nil {
		return nil, nil, err
	}
	seg, err := shm.CreateAnonymous(2*segSize(&o), pipeSegOptions(&o)...)
	if err != nil {
		return nil, nil, err
	}
	a, err = newConn(seg, pipeAB, pipeBA, o, true)
	if err != nil {
		return nil, nil, err
	}
	f, err := a.File()
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	defer f.Close()
	segB, err := shm.OpenFile(f)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	b, err = newConn(segB, pipeBA, pipeAB, o, false)
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// CreatePipe creates the named pipe and returns its end A. Another process
// opens end B with OpenPipe. It fails with shm.ErrExist if the name is
// taken. The name stays until Unlink.
func CreatePipe(name string, opts PipeOptions) (*Conn, error) {
	o := opts.queue()
	if err := o.fill(); err != nil {
		return nil, err
	}
	seg, err := shm.Create(name, 2*segSize(&o), pipeSegOptions(&o)...)
	if err != nil {
		return nil, err
	}
	return newConn(seg, pipeAB, pipeBA, o, true)
}

// OpenPipe opens end B of the named pipe. It fails with ErrRole if a live
// process holds end B.
func OpenPipe(name string) (*Conn, error) {
	seg, err := shm.OpenKind(name, shm.KindQueue)
	if err != nil {
		return nil, err
	}
	return newConn(seg, pipeBA, pipeAB, Options{Spin: defaultSpin}, true)
}

// OpenPipeFile opens end B of a pipe passed as an inherited file (see
// Conn.File and shm.OpenFile). f stays open for the caller to close.
func OpenPipeFile(f *os.File) (*Conn, error) {
	seg, err := openQueueFile(f)
	if err != nil {
		return nil, err
	}
	return newConn(seg, pipeBA, pipeAB, Options{Spin: defaultSpin}, true)
}

func pipeSegOptions(o *Options) []shm.Option {
	return []shm.Option{
		shm.WithKind(shm.KindQueue), shm.WithObjects(4), shm.WithParticipants(o.Participants),
		shm.WithInit(func(seg *shm.Segment) error {
			if err := initQueue(seg, pipeAB, o); err != nil {
				return err
			}
			return initQueue(seg, pipeBA, o)
		}),
	}
}

// newConn builds an end over seg, which it owns (and closes on failure).
func newConn(seg *shm.Segment, outPrefix, inPrefix string, o Options, claim bool) (*Conn, error) {
	out, err := attachIn(seg, outPrefix, o)
	if err != nil {
		seg.Close()
		return nil, err
	}
	in, err := attachIn(seg, inPrefix, o)
	if err != nil {
		seg.Close()
		return nil, err
	}
	if out.mode != SPSC || in.mode != SPSC {
		seg.Close()
		return nil, shm.ErrIncompatible
	}
	c := &Conn{seg: seg, out: out, in: in, addr: PipeAddr{Name: seg.Name()}}
	c.chunk = max(1, min(out.maxMsg, out.capacity/4))
	c.slice = pollSlice
	c.r.deadline.Store(noDeadline)
	c.w.deadline.Store(noDeadline)
	c.r.seg, c.r.n = seg, &in.notEmpty
	c.w.seg, c.w.n = seg, &out.notFull
	c.readReady = func() bool { return c.in.closed() || c.in.sp.ready() || c.r.intr.Load() }
	c.roomReady = func() bool { return c.out.closed() || c.out.sp.room(c.want) || c.w.intr.Load() }
	if claim {
		if err := c.claim(); err != nil {
			seg.Close()
			return nil, err
		}
	}
	return c, nil
}

// claim takes this end's producer side of out and consumer side of in.
func (c *Conn) claim() error {
	c.claimMu.Lock()
	defer c.claimMu.Unlock()
	if c.claimed.Load() {
		return nil
	}
	// Close sets closed before it reads claimed under claimMu: an end
	// being closed takes no sides, or Close sees them and closes the pipe.
	if c.closed.Load() {
		return net.ErrClosed
	}
	if err := claimProducer(c.out); err != nil {
		return err
	}
	if err := claimConsumer(c.in); err != nil {
		c.out.pmu.Lock()
		// Invariant (as in Queue.takeRole): a role word names at most one
		// live holder; only that holder clears it, and only from itself.
		c.out.ctl.u32(cProducer).CompareAndSwap(uint32(c.seg.Self()), 0)
		c.out.prodRole = false
		c.out.pmu.Unlock()
		return err
	}
	c.claimed.Store(true)
	return nil
}

// claimProducer and claimConsumer are prodReady and consReady without the
// closed check: an end may open a pipe its peer already closed.
func claimProducer(q *Queue) error {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	return q.takeProducer()
}

func claimConsumer(q *Queue) error {
	q.cmu.Lock()
	defer q.cmu.Unlock()
	return q.takeConsumer()
}

// enter starts a call: it pins the segment (the caller unpins), refuses a
// closed end and claims the sides if not yet done.
func (c *Conn) enter() error {
	if err := c.seg.Pin(); err != nil {
		return net.ErrClosed
	}
	if c.closed.Load() {
		c.seg.Unpin()
		return net.ErrClosed
	}
	if !c.claimed.Load() {
		if err := c.claim(); err != nil {
			c.seg.Unpin()
			return err
		}
	}
	return nil
}

// ---- deadlines ----

func sinceEpoch() int64 { return int64(time.Since(pipeEpoch)) }

func (s *side) setDeadline(t time.Time) {
	d := int64(noDeadline)
	if !t.IsZero() {
		d = min(int64(t.Sub(pipeEpoch)), noDeadline-1) // Sub saturates
	}
	s.deadline.Store(d)
	s.interrupt()
}

// expired reports whether the side's deadline has passed.
func (s *side) expired() bool {
	d := s.deadline.Load()
	return d != noDeadline && sinceEpoch() >= d
}

// interrupt makes a call blocked on this side look at its state again.
func (s *side) interrupt() {
	// Invariant: intr is set before the wake; a sleeper announced itself
	// before its last check of ready, which reads intr (notify.go).
	s.intr.Store(true)
	if s.seg.Pin() == nil {
		s.n.wake(futex.All)
		s.seg.Unpin()
	}
}

// SetDeadline sets the read and write deadlines (net.Conn): calls blocked
// past it, and later calls, fail with an error matching
// os.ErrDeadlineExceeded (a net.Error whose Timeout is true). A zero t
// means none; a later t re-enables the calls.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.r.setDeadline(t)
	c.w.setDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline of Read, Recv and RecvInto.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.r.setDeadline(t)
	return nil
}

// SetWriteDeadline sets the deadline of Write and Send.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	c.w.setDeadline(t)
	return nil
}

// ---- waiting ----

// waiter is the state of one blocked call.
type waiter struct {
	s        *side
	ctx      context.Context // the caller's
	q        *Queue
	n        *notifier
	sp       *spinner
	ready    func() bool
	peerRole int       // role word of the peer's side of q
	deadline bool      // the side's deadline applies
	stop     time.Time // Poll's bound (zero: none)
	dead     bool      // the peer was proven dead; the ring was looked at once more
}

// errStop: Poll's timeout passed.
var errStop = errors.New("ringbuf: poll timeout")

// block waits until the ring may have changed. nil means look again; an
// error ends the call.
func (c *Conn) block(w *waiter) error {
	if w.dead {
		return ErrPeerDead
	}
	// Clear the flag before reading the state it announces changes of.
	w.s.intr.Store(false)
	if c.closed.Load() {
		return net.ErrClosed
	}
	now := sinceEpoch()
	limit := now + int64(c.slice)
	if w.deadline {
		d := w.s.deadline.Load()
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
	err := c.sleep(w, lim)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, futex.ErrTimeout):
		// A slice (or the deadline) ended: is the peer still there?
		// The peer's role word: any value is safe to ask about (Alive
		// bounds-checks the slot); 0 means the peer has not attached.
		t := shm.Token(w.q.ctl.u32(w.peerRole).Load())
		if t != 0 && !c.seg.Alive(t) {
			w.dead = true
		}
		return nil
	case errors.Is(err, shm.ErrClosed):
		return net.ErrClosed
	}
	return err // the caller's ctx ended
}

// sleep waits on w's notifier until ready, limit, the end of w.ctx or the
// segment's close. The caller holds a pin.
func (c *Conn) sleep(w *waiter, limit time.Time) error {
	q := w.q
	if !q.busy {
		return w.n.sleep(w.ctx, w.sp, limit, w.ready, q.counter(sSleeps))
	}
	for i := 0; !w.ready(); i++ {
		if i&63 == 63 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			if c.seg.Closing() {
				return shm.ErrClosed
			}
			if !time.Now().Before(limit) {
				return futex.ErrTimeout
			}
		}
		runtime.Gosched()
	}
	return nil
}

// ---- writing ----

// Write writes p as messages of at most MaxMessage bytes, waiting for room
// as needed. It returns len(p), or how much was written and why it
// stopped: the write deadline (os.ErrDeadlineExceeded), a closed pipe (an
// error matching ErrClosed and io.ErrClosedPipe), a dead peer
// (ErrPeerDead), or this end's Close (net.ErrClosed).
func (c *Conn) Write(p []byte) (int, error) {
	c.w.op.Lock()
	defer c.w.op.Unlock()
	if err := c.enter(); err != nil {
		return 0, err
	}
	defer c.seg.Unpin()
	if c.w.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	w := waiter{s: &c.w, ctx: context.Background(), q: c.out, n: &c.out.notFull, sp: &c.out.pspin, ready: c.roomReady, peerRole: cConsumer, deadline: true}
	n := 0
	for n < len(p) {
		k := min(len(p)-n, c.chunk)
		err := c.out.TryPut(p[n : n+k])
		if err == nil {
			n += k
			continue
		}
		if err != ErrFull {
			return n, c.writeErr(err)
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
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	if len(msg) > c.out.maxMsg {
		return ErrTooLarge
	}
	c.w.op.Lock()
	defer c.w.op.Unlock()
	if err := c.enter(); err != nil {
		return err
	}
	defer c.seg.Unpin()
	if c.w.expired() {
		return os.ErrDeadlineExceeded
	}
	w := waiter{s: &c.w, ctx: ctx, q: c.out, n: &c.out.notFull, sp: &c.out.pspin, ready: c.roomReady, peerRole: cConsumer, deadline: true}
	for {
		err := c.out.TryPut(msg)
		if err == nil {
			return nil
		}
		if err != ErrFull {
			return c.writeErr(err)
		}
		c.want = uint64(len(msg))
		if err := c.block(&w); err != nil {
			return err
		}
	}
}

func (c *Conn) writeErr(err error) error {
	if err == ErrClosed {
		if c.closed.Load() {
			return net.ErrClosed
		}
		return errWriteClosed
	}
	return err
}

// CloseWrite closes this end's direction: the peer reads what was written,
// then io.EOF. This end can still read.
func (c *Conn) CloseWrite() error {
	if err := c.enter(); err != nil {
		return err
	}
	c.seg.Unpin() // Queue.Close pins: pins must not nest
	if err := c.out.Close(); err != nil {
		return net.ErrClosed // this end closed meanwhile
	}
	return nil
}

// ---- reading ----

// Read reads bytes of the incoming messages into p. It waits for a
// message unless one is there; it returns io.EOF once the peer closed and
// everything was read, ErrPeerDead if the peer died, an error matching
// os.ErrDeadlineExceeded past the read deadline, and net.ErrClosed after
// Close.
func (c *Conn) Read(p []byte) (int, error) {
	c.r.op.Lock()
	defer c.r.op.Unlock()
	if err := c.enter(); err != nil {
		return 0, err
	}
	defer c.seg.Unpin()
	if c.r.expired() {
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) == 0 {
		return 0, nil
	}
	w := c.readWaiter(context.Background())
	for {
		n, err := c.tryRead(p)
		if err != ErrEmpty {
			return n, c.readErr(err)
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

func (c *Conn) recv(ctx context.Context, buf []byte, alloc bool) ([]byte, int, error) {
	c.r.op.Lock()
	defer c.r.op.Unlock()
	if err := c.enter(); err != nil {
		return nil, 0, err
	}
	defer c.seg.Unpin()
	if c.r.expired() {
		return nil, 0, os.ErrDeadlineExceeded
	}
	w := c.readWaiter(ctx)
	for {
		out, n, err := c.tryRecv(buf, alloc)
		if err != ErrEmpty {
			return out, n, c.readErr(err)
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
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	c.r.op.Lock()
	defer c.r.op.Unlock()
	if err := c.enter(); err != nil {
		return false, err
	}
	defer c.seg.Unpin()
	w := c.readWaiter(context.Background())
	w.deadline = false
	if timeout >= 0 {
		w.stop = time.Now().Add(timeout)
	}
	for {
		c.in.cmu.Lock()
		_, _, _, err := c.in.next(-1)
		c.in.cmu.Unlock()
		if err == nil {
			return true, nil
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
	return waiter{s: &c.r, ctx: ctx, q: c.in, n: &c.in.notEmpty, sp: &c.in.cspin, ready: c.readReady, peerRole: cProducer, deadline: true}
}

func (c *Conn) readErr(err error) error {
	if err == ErrClosed {
		if c.closed.Load() {
			return net.ErrClosed
		}
		return io.EOF
	}
	return err
}

// rest returns the unread part of msg, or an error if the record shrank
// under a partial read (only a corrupting peer can do that).
func (c *Conn) rest(msg []byte) ([]byte, error) {
	off := c.roff
	if off > len(msg) {
		return nil, c.in.fail(corruptf("message of %d bytes under a read offset of %d", len(msg), off))
	}
	return msg[off:], nil
}

// tryRead copies what is there, up to len(p) bytes, across as many
// messages as it takes, and frees the messages it finished at once.
func (c *Conn) tryRead(p []byte) (int, error) {
	q := c.in
	q.cmu.Lock()
	defer q.cmu.Unlock()
	n, k := 0, 0
	var err error
	for n < len(p) {
		var msg []byte
		var end uint64
		msg, end, _, err = q.next(-1)
		if err != nil {
			break
		}
		var rest []byte
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
		q.finishGet(end, len(msg))
		k++
	}
	if k > 0 {
		q.wakeProducers(k)
	}
	if n > 0 {
		return n, nil
	}
	return 0, err
}

func (c *Conn) tryRecv(buf []byte, alloc bool) ([]byte, int, error) {
	q := c.in
	q.cmu.Lock()
	defer q.cmu.Unlock()
	msg, end, _, err := q.next(-1)
	if err != nil {
		return nil, 0, err
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
	q.finishGet(end, len(msg))
	q.wakeProducers(1)
	return out, len(rest), nil
}

// ---- the rest of net.Conn ----

// Close closes this end. If it was used (or opened by CreatePipe, OpenPipe
// or OpenPipeFile) the pipe closes: the peer reads what was written, then
// io.EOF, and its writes fail. An end of NewPipe that was never used only
// detaches, so that the process it was handed to keeps the pipe open.
// Calls blocked on this end return net.ErrClosed.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	c.claimMu.Lock()
	claimed := c.claimed.Load()
	c.claimMu.Unlock()
	if claimed {
		// The segment stays mapped until c.seg.Close below: only Close
		// unmaps, and this is the only Close that gets here.
		c.out.Close()
		c.in.Close()
		self := uint32(c.seg.Self())
		// Release our sides (CAS from self only: never clear a successor).
		c.out.ctl.u32(cProducer).CompareAndSwap(self, 0)
		c.in.ctl.u32(cConsumer).CompareAndSwap(self, 0)
	}
	c.r.interrupt()
	c.w.interrupt()
	return c.seg.Close()
}

// LocalAddr returns the pipe's address.
func (c *Conn) LocalAddr() net.Addr { return c.addr }

// RemoteAddr returns the pipe's address.
func (c *Conn) RemoteAddr() net.Addr { return c.addr }

// File returns a new file of the pipe's segment for a child process, which
// opens end B with OpenPipeFile. The caller closes it.
func (c *Conn) File() (*os.File, error) {
	if c.closed.Load() {
		return nil, net.ErrClosed
	}
	return c.seg.File()
}

// Unlink removes the pipe's name (see shm.Segment.Unlink).
func (c *Conn) Unlink() error { return c.seg.Unlink() }

// MaxMessage returns the largest message this end can send.
func (c *Conn) MaxMessage() int { return c.out.maxMsg }
