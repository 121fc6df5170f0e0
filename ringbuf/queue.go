package ringbuf

import (
	"context"
	"errors"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// Queue is a message queue in shared memory between processes: Python's
// multiprocessing.Queue, without a feeder thread or pickling. One process
// creates it (Create, CreateAnonymous); others attach (Open, OpenFile).
// Close releases this handle; Shutdown closes the queue for everyone.
//
// All methods are safe for concurrent use. A handle's producer calls take
// turns on its producer side (consumer calls on its consumer side) only
// while they touch the ring: a call that waits for room or for a message
// lets the others go, and a call waiting for its turn honours its context.
// For parallelism within one process, open a handle per goroutine. In SPSC
// mode one handle at a time may produce and one may consume: the first to
// do so takes the side, and a second live one gets ErrRole.
type Queue struct {
	c       *core
	r       ring
	prod    side
	cons    side
	guarded bool // named segment: memory faults become ErrCorrupt

	shared bool // several handles take (and put): chain wakeups (see chain)

	closed atomic.Bool
	broken atomic.Bool
	stop   atomic.Pointer[error] // why calls fail from now on: ErrClosed, or the corruption
	done   chan struct{}         // closed by Close: calls waiting for a side leave
}

// side is one direction of a handle: its turn-taking and its spin policy.
type side struct {
	gate futex.Gate
	spin futex.Spinner
}

// Create creates the named queue (a segment of kind shm.KindQueue). It
// fails with shm.ErrExist if the name is taken.
func Create(name string, opts Options) (*Queue, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	seg, err := shm.Create(name, segSize(&opts), queueSegOptions(&opts)...)
	if err != nil {
		return nil, err
	}
	return newQueue(seg, opts, nil)
}

// CreateAnonymous creates a queue in a memfd segment, for a child process
// to attach with OpenFile(q.File()).
func CreateAnonymous(opts Options) (*Queue, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	seg, err := shm.CreateAnonymous(segSize(&opts), queueSegOptions(&opts)...)
	if err != nil {
		return nil, err
	}
	return newQueue(seg, opts, nil)
}

func queueSegOptions(o *Options) []shm.Option {
	return []shm.Option{
		shm.WithKind(shm.KindQueue), shm.WithObjects(4), shm.WithParticipants(o.Participants),
		shm.WithInit(func(seg *shm.Segment) error { return initObjects(seg, "", o) }),
	}
}

// Open attaches to the named queue.
func Open(name string) (*Queue, error) {
	seg, err := shm.OpenKind(name, shm.KindQueue)
	if err != nil {
		return nil, err
	}
	return newQueue(seg, Options{}, nil)
}

// OpenFile attaches to a queue passed as an inherited file (see
// shm.OpenFile). f stays open for the caller to close.
func OpenFile(f *os.File) (*Queue, error) {
	seg, err := openQueueFile(f)
	if err != nil {
		return nil, err
	}
	return newQueue(seg, Options{}, nil)
}

// newQueue builds a handle on the queue in seg, which it owns (and closes
// on failure). o gives the handle's Spin and BusyPoll; h the test hooks.
func newQueue(seg *shm.Segment, o Options, h *hooks) (q *Queue, err error) {
	if seg.Name() != "" {
		// The file may be truncated under us while we read the layout.
		defer func(old bool) {
			r := recover()
			restorePanicOnFault(old)
			if r != nil {
				q, err = nil, faultError(seg, r)
				seg.Close()
			}
		}(setPanicOnFault())
	}
	c, err := attachCore(seg, "")
	if err != nil {
		seg.Close()
		return nil, err
	}
	q = &Queue{c: c, r: c.newRing(h), guarded: seg.Name() != "", done: make(chan struct{})}
	q.shared = q.r.shared()
	q.SetSpin(o.Spin)
	q.SetBusyPoll(o.BusyPoll)
	return q, nil
}

// SetBusyPoll makes this handle's blocked calls poll instead of sleeping.
func (q *Queue) SetBusyPoll(on bool) {
	q.prod.spin.SetPoll(on)
	q.cons.spin.SetPoll(on)
}

// SetSpin sets the bound on this handle's spinning before it sleeps
// (0: DefaultSpin; negative: never spin). See Options.Spin.
func (q *Queue) SetSpin(d time.Duration) {
	q.prod.spin.SetMax(d)
	q.cons.spin.SetMax(d)
}

// ---- turns, errors, faults ----

// enter takes a side's turn for one call: it waits for a sibling that
// holds it (until ctx ends or the handle closes) and refuses a closed or
// broken handle.
func (q *Queue) enter(ctx context.Context, s *side) error {
	// Before the gate, which Close keeps. A call that got past this check
	// finishes before Close unmaps: Close waits for the gates.
	if e := q.stop.Load(); e != nil {
		return *e
	}
	if !s.gate.TryEnter() {
		if err := s.gate.Enter(ctx, q.done); err != nil {
			if errors.Is(err, futex.ErrClosed) {
				return ErrClosed
			}
			return err
		}
	}
	return nil
}

var errClosed = ErrClosed // stop's value after Close

// fail marks the handle broken by err (corruption), for this call and all
// later ones.
func (q *Queue) fail(err error) error {
	q.broken.Store(true)
	q.stop.CompareAndSwap(nil, &err)
	return *q.stop.Load()
}

// ringErr passes a ring's error on, breaking the handle on corruption.
func (q *Queue) ringErr(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return q.fail(err)
	}
	return err
}

// catch is deferred by calls on a named segment, whose file a peer could
// truncate (memfds are sealed against it): a memory fault inside the
// mapping becomes ErrCorrupt for the call and breaks the handle, instead of
// killing the process with SIGBUS. old is the goroutine's previous
// SetPanicOnFault setting, restored here.
func (q *Queue) catch(err *error, old bool) {
	r := recover()
	restorePanicOnFault(old)
	if r != nil {
		*err = q.fail(faultError(q.c.seg, r))
	}
}

// setPanicOnFault turns faults into panics for this goroutine and returns
// the previous setting, for catch to restore.
func setPanicOnFault() bool { return debug.SetPanicOnFault(true) }

func restorePanicOnFault(old bool) { debug.SetPanicOnFault(old) }

// faultError converts a recovered memory fault in seg's mapping into an
// error; any other panic goes on.
func faultError(seg *shm.Segment, r any) error {
	if f, ok := r.(interface{ Addr() uintptr }); ok && seg.Contains(f.Addr()) {
		return corruptf("memory fault at %#x: the segment's file was truncated", f.Addr())
	}
	panic(r)
}

// wait sleeps until the side may make progress (ready, see ring), the
// retry time passes, ctx ends or the handle closes. The caller holds no
// turn.
func (q *Queue) wait(ctx context.Context, producer bool, n int, key uint64, retry time.Duration) (err error) {
	ec, sp := q.c.notEmpty, &q.cons.spin
	if producer {
		ec, sp = q.c.notFull, &q.prod.spin
	}
	var deadline time.Time
	if retry > 0 {
		deadline = time.Now().Add(retry)
	}
	if q.guarded && (retry <= 0 || retry > pollSlice) {
		// A named segment's file may be truncated under a sleeper: then
		// neither a waker nor our own ctx can reach its futex word (the
		// wake faults). Sleeping in slices, the next look at the ring
		// faults instead and the call returns ErrCorrupt.
		deadline = time.Now().Add(pollSlice)
	}
	// No turn is held while sleeping, so Close's wait for the turns does
	// not cover us: the pin keeps the mapping until we leave.
	if q.c.seg.Pin() != nil {
		return ErrClosed
	}
	defer q.c.seg.Unpin()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	err = ec.Wait(ctx, deadline, sp, func() bool { return q.r.ready(producer, n, key) || q.closed.Load() })
	q.noteSleeps()
	switch {
	case err == nil, errors.Is(err, futex.ErrTimeout):
		return nil // look again (and recover a dead claimant, on retry)
	case errors.Is(err, shm.ErrClosed):
		return ErrClosed
	case errors.Is(err, futex.ErrFutex):
		return q.fail(corruptf("futex: %v", err))
	}
	return err
}

// published accounts for k messages of bytes bytes made visible, and wakes
// consumers; MPMC producers also chain a wakeup to a waiting producer
// while room remains (see notified).
func (q *Queue) published(k int, bytes int) {
	q.c.stats.add(sPuts, uint64(k))
	q.c.stats.add(sBytesIn, uint64(bytes))
	q.notify(q.c.notEmpty, k)
	q.chain(true)
}

// consumed accounts for k messages of bytes bytes taken, makes their space
// reusable (at once if a producer is announced as waiting) and wakes
// producers; consumers chain a wakeup while messages remain.
func (q *Queue) consumed(k int, bytes int) {
	q.c.stats.add(sGets, uint64(k))
	q.c.stats.add(sBytesOut, uint64(bytes))
	if q.r.release(q.c.notFull.Waiting()) {
		q.notify(q.c.notFull, k)
	}
	q.chain(false)
}

func (q *Queue) notify(ec *futex.EventCount, k int) {
	if ec.Notify(k) {
		q.c.stats.add(sWakeups, 1)
	}
}

// chain passes a wakeup on. A publish wakes one sleeping consumer, but the
// consumer that takes the message is not always the one woken (another
// may be spinning or on its fast path), and a consumer may stop taking
// messages while some remain. So whoever takes a message and sees another
// one ready, with a sleeper announced, wakes one more: while messages
// remain, sleepers keep being woken. Producers do the same for room. The
// cost when nobody sleeps is one load of a line this side owns.
func (q *Queue) chain(producer bool) {
	if !q.shared {
		return // one taker per side: nobody to pass a wakeup to
	}
	ec := q.c.notEmpty
	if producer {
		ec = q.c.notFull
	}
	if !ec.Waiting() {
		return
	}
	key, _ := q.r.waitKey(producer)
	if q.r.ready(producer, 0, key) {
		q.notify(ec, 1)
	}
}

// noteSleeps records this handle's kernel sleeps in its stats line.
func (q *Queue) noteSleeps() {
	q.c.stats.set(sSleeps, q.c.notEmpty.Sleeps()+q.c.notFull.Sleeps())
}

// touch runs fn on the handle's mapping: refused once the handle is
// closed or broken, pinned against Close's unmap, and on a named segment
// with memory faults turned into ErrCorrupt.
func (q *Queue) touch(fn func()) (err error) {
	if q.c.seg.Pin() != nil {
		return ErrClosed
	}
	defer q.c.seg.Unpin()
	if e := q.stop.Load(); e != nil {
		return *e
	}
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	fn()
	return nil
}

// ---- state ----

// Shutdown closes the queue for every process: later puts fail with
// ErrClosed; consumers receive everything already put, then ErrClosed.
// Blocked producers and consumers in every process are woken. A Put that
// returned nil is always received by consumers that drain the queue.
func (q *Queue) Shutdown() (err error) {
	if err := q.c.seg.Pin(); err != nil {
		return ErrClosed
	}
	defer q.c.seg.Unpin()
	if q.closed.Load() {
		return ErrClosed
	}
	if e := q.stop.Load(); e != nil {
		return *e // broken
	}
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	q.r.shutdown()
	q.notify(q.c.notEmpty, futex.All)
	q.notify(q.c.notFull, futex.All)
	return nil
}

// Close releases this handle: its SPSC side (if held), its participant
// slot and its mapping. Calls blocked on the handle return ErrClosed; a
// WithReserve or WithPeek callback in progress is waited for. The queue
// itself stays for the other handles (see Shutdown). Close is idempotent
// only in effect: a second call returns ErrClosed.
func (q *Queue) Close() error {
	if !q.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	q.stop.Store(&errClosed)
	close(q.done)
	q.c.notEmpty.Close()
	q.c.notFull.Close()
	q.c.join.Close()
	// Wait for the calls in progress: each holds its side's turn while it
	// touches the ring, and sleeps without it.
	q.prod.gate.Enter(context.Background(), nil)
	q.cons.gate.Enter(context.Background(), nil)
	if !q.broken.Load() {
		q.detachRing()
	}
	return q.c.seg.Close()
}

func (q *Queue) detachRing() {
	if q.guarded {
		var err error
		defer q.catch(&err, setPanicOnFault())
	}
	q.r.detach()
	// A consumer's last consumed space was published: tell a producer that
	// waits for it. (This handle's event counts are closed, but notify
	// still reaches the announced sleepers of other processes.)
	q.notify(q.c.notFull, 1)
}

// Unlink removes the queue's name (see shm.Segment.Unlink).
func (q *Queue) Unlink() error { return q.c.seg.Unlink() }

// Unlink removes the named queue.
func Unlink(name string) error { return shm.Unlink(name) }

// File returns a new file of the queue's segment for a child process, which
// attaches with OpenFile. The caller closes it.
func (q *Queue) File() (*os.File, error) {
	if q.closed.Load() {
		return nil, ErrClosed
	}
	return q.c.seg.File()
}

// Segment returns the queue's segment.
func (q *Queue) Segment() *shm.Segment { return q.c.seg }

// Mode returns SPSC or MPMC.
func (q *Queue) Mode() Mode { return q.c.mode }

// MaxMessage returns the largest message the queue takes.
func (q *Queue) MaxMessage() int { return q.c.maxMsg }

// Cap returns the ring's capacity: bytes for SPSC, message slots for MPMC.
func (q *Queue) Cap() int { return q.c.capacity }

// Len returns how many messages are queued. For MPMC it is exact at the
// moment of reading (claimed positions included); for SPSC it is computed
// from the put and get counters and may lag by a message or two.
func (q *Queue) Len() int { return q.Stats().Len }

// Stats sums every participant's counters (zero after Close).
func (q *Queue) Stats() (st Stats) {
	if q.c.seg.Pin() != nil {
		return Stats{}
	}
	defer q.c.seg.Unpin()
	if q.readStats(&st) != nil {
		return Stats{}
	}
	st.At = time.Now()
	return st
}

func (q *Queue) readStats(st *Stats) (err error) {
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	q.c.sumCounters(st)
	q.r.stats(st)
	st.Closed = q.r.isShutdown()
	return nil
}

// Stats are a queue's counters, summed over every process that used it.
// For MPMC, Puts and Gets are derived from the ring's positions, so
// Puts = Gets + DeadConsumerLosses + Len holds exactly whatever died when;
// the other counters are kept per participant without atomics, so a
// snapshot may lag a running process by a few operations.
type Stats struct {
	Puts, Gets         uint64 // messages
	BytesIn, BytesOut  uint64 // payload bytes
	Sleeps             uint64 // times a call went to sleep in the kernel
	Wakeups            uint64 // FUTEX_WAKE calls made
	FullEvents         uint64 // a put found the ring full
	EmptyEvents        uint64 // a get found the ring empty
	DeadProducerSlots  uint64 // MPMC slots skipped: their producer died mid-put
	DeadConsumerLosses uint64 // MPMC messages lost with a consumer that died mid-get
	Len                int    // messages queued now
	Closed             bool   // Shutdown was called
	At                 time.Time
}
