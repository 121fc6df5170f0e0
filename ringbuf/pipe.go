package ringbuf

// Pipe: a duplex connection of two SPSC rings in one segment.
//
// The segment holds queue "ab." (end A produces, end B consumes) and queue
// "ba." (B produces, A consumes). Each end is a Conn over both, through its
// own attachment of the segment, so each end has its own participant
// token. It uses the rings and their event counts directly (spsc.go), with
// its own policy: byte streams, deadlines, peer death, EOF. An end claims
// its two SPSC sides (the producer role of the ring it writes, the consumer
// role of the ring it reads) when it is opened (CreatePipe, OpenPipe,
// OpenPipeFile, end A of NewPipe) or, for end B of NewPipe, on first use:
// that end is usually handed to a child with File and closed unused, and
// the child then takes the sides.
//
// Closing: CloseWrite shuts down the ring this end writes; the peer reads
// what was published, then io.EOF. Close shuts down both, so the peer's
// writes fail too, and wakes sleepers in every process.
//
// Liveness: the peer's token is the role word of the ring side it holds
// (the producer of the ring we read, the consumer of the ring we write). A
// zero word means the peer has not attached yet: absent, not dead. A
// blocked call sleeps in slices of pollSlice; after each slice that ends
// without progress it asks the kernel (shm.Segment.Alive) whether the peer
// lives. Once it is proven dead the call looks at the ring once more (what
// the peer published before dying is delivered) and then fails with
// ErrPeerDead. A Write that fits in the ring succeeds even if the peer has
// died, as a socket's send buffer does; the first one that must wait fails.
//
// Deadlines (net.Conn) are stored per direction as monotonic nanoseconds
// since pipeEpoch. A blocked call clears its direction's interrupt flag,
// reads the deadline, and waits on the ring's event count with the flag
// among the things it waits for; SetDeadline stores the deadline, sets the
// flag and interrupts this attachment's sleepers (the event count's
// protocol, with the flag as what is published). So the call either reads
// the new deadline or is woken to read it: a deadline moved while a call is
// blocked takes effect at once, and no context is allocated for it.
//
// Turns: reads take turns with each other for a whole call (a Read's
// partial message is state), and so do writes (a Write's chunks must not
// interleave with another's); waiting for the turn honours the call's
// context, and ends with the deadline because the call holding the turn
// returns at that same deadline. Close interrupts every call and waits for
// them to leave before it unmaps.

import (
	"context"
	"io"
	"math"
	"net"
	"os"
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
	// noDeadline is the stored deadline of a direction without one.
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
// All methods are safe for concurrent use; reads take turns with each
// other, and so do writes. Send, RecvInto, Read and Write do not allocate,
// also when they wait, unless the ctx of a waiting Send or RecvInto can be
// cancelled.
type Conn struct {
	seg     *shm.Segment
	out     *core     // this end produces
	in      *core     // this end consumes
	w       *spscRing // out's ring, producer side
	r       *spscRing // in's ring, consumer side
	addr    net.Addr
	chunk   int           // largest message Write makes
	slice   time.Duration // pollSlice; tests shorten it
	guarded bool          // named segment: memory faults become ErrCorrupt

	claimMu sync.Mutex
	claimed atomic.Bool // both sides taken; set under claimMu

	rd direction // Read, Recv, RecvInto, Poll
	wr direction // Write, Send

	roff int    // bytes of the current incoming message already read; rd's turn
	want uint64 // payload size a blocked writer waits room for; wr's turn

	closed atomic.Bool
	done   chan struct{} // closed by Close
	broken atomic.Pointer[error]
}

var (
	_ net.Conn           = (*Conn)(nil)
	_ io.ReadWriteCloser = (*Conn)(nil)
)

// direction is one direction's call state.
type direction struct {
	gate     futex.Gate
	spin     futex.Spinner
	deadline atomic.Int64 // nanoseconds since pipeEpoch; noDeadline if none
	intr     atomic.Bool  // set by SetDeadline and Close: a blocked call re-reads its state
	ec       *futex.EventCount
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
	return newConn(seg, pipeBA, pipeAB, Options{}, true)
}

// OpenPipeFile opens end B of a pipe passed as an inherited file (see
// Conn.File and shm.OpenFile). f stays open for the caller to close.
func OpenPipeFile(f *os.File) (*Conn, error) {
	seg, err := openQueueFile(f)
	if err != nil {
		return nil, err
	}
	return newConn(seg, pipeBA, pipeAB, Options{}, true)
}

func pipeSegOptions(o *Options) []shm.Option {
	return []shm.Option{
		shm.WithKind(shm.KindQueue), shm.WithObjects(4), shm.WithParticipants(o.Participants),
		shm.WithInit(func(seg *shm.Segment) error {
			if err := initObjects(seg, pipeAB, o); err != nil {
				return err
			}
			return initObjects(seg, pipeBA, o)
		}),
	}
}

// newConn builds an end over seg, which it owns (and closes on failure).
func newConn(seg *shm.Segment, outPrefix, inPrefix string, o Options, claim bool) (*Conn, error) {
	out, err := attachCore(seg, outPrefix)
	if err != nil {
		seg.Close()
		return nil, err
	}
	in, err := attachCore(seg, inPrefix)
	if err != nil {
		seg.Close()
		return nil, err
	}
	if out.mode != SPSC || in.mode != SPSC {
		seg.Close()
		return nil, shm.ErrIncompatible
	}
	c := &Conn{
		seg: seg, out: out, in: in, w: newSPSC(out), r: newSPSC(in),
		addr: PipeAddr{Name: seg.Name()}, slice: pollSlice, guarded: seg.Name() != "", done: make(chan struct{}),
	}
	c.chunk = max(1, min(out.maxMsg, out.capacity/4))
	c.rd.ec, c.wr.ec = in.notEmpty, out.notFull
	for _, d := range []*direction{&c.rd, &c.wr} {
		d.deadline.Store(noDeadline)
		d.spin.SetMax(o.Spin)
		d.spin.SetPoll(o.BusyPoll)
	}
	if claim {
		if err := c.claim(); err != nil {
			seg.Close()
			return nil, err
		}
	}
	return c, nil
}

// claim takes this end's producer side of out and consumer side of in.
// The caller holds no turn.
func (c *Conn) claim() (err error) {
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
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	c.wr.gate.Enter(context.Background(), nil)
	err = c.w.takeProducer()
	c.wr.gate.Leave()
	if err != nil {
		return err
	}
	c.rd.gate.Enter(context.Background(), nil)
	err = c.r.takeConsumer()
	c.rd.gate.Leave()
	if err != nil {
		c.wr.gate.Enter(context.Background(), nil)
		c.w.detach()
		c.wr.gate.Leave()
		return err
	}
	c.claimed.Store(true)
	return nil
}

// ---- deadlines ----

func sinceEpoch() int64 { return int64(time.Since(pipeEpoch)) }

func (d *direction) setDeadline(t time.Time) {
	v := int64(noDeadline)
	if !t.IsZero() {
		v = min(int64(t.Sub(pipeEpoch)), noDeadline-1) // Sub saturates
	}
	d.deadline.Store(v)
	d.interrupt()
}

// expired reports whether the direction's deadline has passed.
func (d *direction) expired() bool {
	v := d.deadline.Load()
	return v != noDeadline && sinceEpoch() >= v
}

// interrupt makes a call blocked in this direction look at its state again.
func (d *direction) interrupt() {
	// Invariant: intr is set before the interrupt; a sleeper announced
	// itself before its last check of ready, which reads intr.
	d.intr.Store(true)
	d.ec.Interrupt()
}

// SetDeadline sets the read and write deadlines (net.Conn): calls blocked
// past it, and later calls, fail with an error matching
// os.ErrDeadlineExceeded (a net.Error whose Timeout is true). A zero t
// means none; a later t re-enables the calls.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.pin(); err != nil {
		return err
	}
	defer c.seg.Unpin()
	c.rd.setDeadline(t)
	c.wr.setDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline of Read, Recv, RecvInto.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.pin(); err != nil {
		return err
	}
	defer c.seg.Unpin()
	c.rd.setDeadline(t)
	return nil
}

// SetWriteDeadline sets the deadline of Write and Send.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if err := c.pin(); err != nil {
		return err
	}
	defer c.seg.Unpin()
	c.wr.setDeadline(t)
	return nil
}

// pin keeps the mapping while a call that holds no turn touches it.
func (c *Conn) pin() error {
	if c.closed.Load() || c.seg.Pin() != nil {
		return net.ErrClosed
	}
	return nil
}

// ---- closing ----

// CloseWrite closes this end's direction: the peer reads what was written,
// then io.EOF. This end can still read.
func (c *Conn) CloseWrite() (err error) {
	if err := c.ensureClaimed(); err != nil {
		return err
	}
	if err := c.pin(); err != nil {
		return err
	}
	defer c.seg.Unpin()
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	c.w.shutdown()
	c.out.notEmpty.Notify(futex.All)
	c.out.notFull.Notify(futex.All)
	return nil
}

// Close closes this end. If it was used (or opened by CreatePipe, OpenPipe
// or OpenPipeFile) the pipe closes: the peer reads what was written, then
// io.EOF, and its writes fail. An end of NewPipe that was never used only
// detaches, so that the process it was handed to keeps the pipe open.
// Calls blocked on this end return net.ErrClosed.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	close(c.done)
	c.claimMu.Lock()
	claimed := c.claimed.Load()
	c.claimMu.Unlock()
	for _, e := range []*futex.EventCount{c.in.notEmpty, c.in.notFull, c.out.notEmpty, c.out.notFull} {
		e.Close() // this attachment's sleepers return
	}
	c.rd.gate.Enter(context.Background(), nil)
	c.wr.gate.Enter(context.Background(), nil)
	if claimed && c.broken.Load() == nil {
		c.shutdownBoth()
	}
	return c.seg.Close()
}

// shutdownBoth closes both directions for the peer, wakes its sleepers and
// releases this end's sides.
func (c *Conn) shutdownBoth() {
	var err error
	if c.guarded {
		defer c.catch(&err, setPanicOnFault())
	}
	c.w.shutdown()
	c.r.shutdown()
	// Closed handles still notify: the peer's sleepers are announced in
	// the shared words.
	c.out.notEmpty.Notify(futex.All)
	c.in.notFull.Notify(futex.All)
	c.w.detach()
	c.r.detach()
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
