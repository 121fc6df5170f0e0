package ringbuf

import (
	"context"
	"errors"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// Object names inside a queue's segment.
const (
	objCtl  = "queue"
	objRing = "ring"
)

const (
	defaultCapacity = 1 << 20
	defaultMPMCMax  = 4 << 10
	defaultSpin     = 50 * time.Microsecond
	// stuckGrace is how long a side waits on a claimed-but-unfinished
	// position before asking the kernel whether its claimant died.
	stuckGrace = 10 * time.Millisecond
)

// Test hooks, set only by tests before any queue is used: testHookClaimed
// runs after an MPMC producer claims a position and before it publishes it;
// testHookGot after an MPMC consumer claims a message and before it frees
// the slot. They are the windows crash tests kill in.
var testHookClaimed, testHookGot func()

// Queue is a message queue in shared memory between processes: Python's
// multiprocessing.Queue, without a feeder thread or pickling. One process
// creates it (Create, CreateAnonymous); others attach (Open, OpenFile).
//
// All methods are safe for concurrent use. A handle serializes its own
// goroutines per side (all its producers, all its consumers); for
// parallelism within one process, open a handle per goroutine. In SPSC mode
// one handle at a time may produce and one may consume: the first to do so
// takes the side, and a second live one gets ErrRole.
type Queue struct {
	seg      *shm.Segment
	mode     Mode
	ctl      ctl
	line     []byte // this handle's per-participant line
	sp       *spsc
	mp       *mpmc
	notEmpty notifier
	notFull  notifier
	maxMsg   int
	capacity int
	pspin    spinner // producer side (under pmu)
	cspin    spinner // consumer side (under cmu)
	busy     bool

	pmu      sync.Mutex // producer side of this handle
	prodRole bool
	resv     reservation
	pStuck   stuckState

	cmu      sync.Mutex // consumer side of this handle
	consRole bool
	peek     peekState
	cStuck   stuckState

	broken   atomic.Pointer[error]
	detached atomic.Bool // set by Detach: later calls fail with shm.ErrClosed
}

type reservation struct {
	active bool
	off    uint64 // SPSC record offset
	end    uint64 // SPSC end for the reserved size
	n      int
	pos    uint64 // MPMC position
}

type peekState struct {
	active bool
	end    uint64 // SPSC: position after the record; MPMC: its position
}

type stuckState struct {
	pos   uint64
	since time.Time
}

func (o *Options) fill() error {
	if o.Mode == 0 {
		o.Mode = SPSC
	}
	if o.Capacity == 0 {
		o.Capacity = defaultCapacity
	}
	if o.Participants == 0 {
		o.Participants = 128
	}
	if o.Spin == 0 {
		o.Spin = defaultSpin
	}
	if o.Capacity < 0 || o.Capacity > 1<<36 || o.MaxMessage < 0 || o.MaxMessage > 1<<30 {
		return ErrInvalid
	}
	switch o.Mode {
	case SPSC:
		o.Capacity = 1 << bits.Len64(uint64(max(o.Capacity, 64)-1))
		if o.MaxMessage == 0 {
			o.MaxMessage = o.Capacity/2 - recHdr
		}
		if 2*recSize(uint64(o.MaxMessage)) > uint64(o.Capacity) {
			return errors.Join(ErrInvalid, errors.New("ringbuf: SPSC capacity must hold two records of MaxMessage"))
		}
	case MPMC:
		if o.MaxMessage == 0 {
			o.MaxMessage = defaultMPMCMax
		}
	default:
		return ErrInvalid
	}
	return nil
}

func slotSizeFor(maxMsg int) uint64 { return (slotHdr + uint64(maxMsg) + 63) &^ 63 }

// layoutFor returns the ring's byte size and the capacity word (SPSC
// bytes, MPMC slots).
func layoutFor(o *Options) (ringBytes, capWord uint64) {
	if o.Mode == SPSC {
		return uint64(o.Capacity), uint64(o.Capacity)
	}
	ss := slotSizeFor(o.MaxMessage)
	n := uint64(o.Capacity) / ss
	if n < 2 {
		n = 2
	}
	n = 1 << (bits.Len64(n) - 1) // round down to a power of two
	return n * ss, n
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
	return attach(seg, "", opts)
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
	return attach(seg, "", opts)
}

func segSize(o *Options) int64 {
	ring, _ := layoutFor(o)
	return int64(ring) + int64(ctlSize(o.Participants)) + 2*shm.Align
}

func queueSegOptions(o *Options) []shm.Option {
	return []shm.Option{
		shm.WithKind(shm.KindQueue), shm.WithObjects(4), shm.WithParticipants(o.Participants),
		shm.WithInit(func(seg *shm.Segment) error { return initQueue(seg, "", o) }),
	}
}

// initQueue allocates and initializes the ring and control block (named
// prefix+"queue", prefix+"ring") before the segment becomes visible.
func initQueue(seg *shm.Segment, prefix string, o *Options) error {
	ringBytes, capWord := layoutFor(o)
	ss := slotSizeFor(o.MaxMessage)
	_, _, err := seg.Alloc(prefix+objRing, shm.KindRing, uint32(o.Mode), int(ringBytes), func(mem []byte) error {
		if o.Mode == MPMC {
			for i := uint64(0); i < capWord; i++ {
				(*atomic.Uint64)(unsafe.Pointer(&mem[i*ss])).Store(i)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, _, err = seg.Alloc(prefix+objCtl, shm.KindQueue, uint32(o.Mode), ctlSize(o.Participants), func(mem []byte) error {
		c := ctl{mem}
		c.u32(cMode).Store(uint32(o.Mode))
		c.u32(cMaxMsg).Store(uint32(o.MaxMessage))
		c.u64(cCapacity).Store(capWord)
		if o.Mode == MPMC {
			c.u32(cSlotSize).Store(uint32(ss))
		}
		return nil
	})
	return err
}

// Open attaches to the named queue.
func Open(name string) (*Queue, error) {
	seg, err := shm.OpenKind(name, shm.KindQueue)
	if err != nil {
		return nil, err
	}
	return attach(seg, "", Options{Spin: defaultSpin})
}

// OpenFile attaches to a queue passed as an inherited file (see
// shm.OpenFile).
func OpenFile(f *os.File) (*Queue, error) {
	seg, err := openQueueFile(f)
	if err != nil {
		return nil, err
	}
	return attach(seg, "", Options{Spin: defaultSpin})
}

// openQueueFile attaches to an inherited segment of queue kind (a Queue's
// or a Pipe's).
func openQueueFile(f *os.File) (*shm.Segment, error) {
	seg, err := shm.OpenFile(f)
	if err != nil {
		return nil, err
	}
	if seg.Info().Kind != shm.KindQueue {
		seg.Close()
		return nil, shm.ErrIncompatible
	}
	return seg, nil
}

// attach opens the queue in seg and takes ownership of seg (closing it on
// failure).
func attach(seg *shm.Segment, prefix string, o Options) (*Queue, error) {
	q, err := attachIn(seg, prefix, o)
	if err != nil {
		seg.Close()
	}
	return q, err
}

// attachIn reads the queue's configuration once, validates it against the
// objects' real sizes, and builds a handle on the queue named by prefix in
// seg. Several queues may share one segment (a Pipe holds two); the caller
// keeps ownership of seg.
func attachIn(seg *shm.Segment, prefix string, o Options) (q *Queue, err error) {
	co, cmem, err := seg.Lookup(prefix+objCtl, shm.KindQueue, shm.AnyAux)
	if err != nil {
		return nil, err
	}
	_, ring, err := seg.Lookup(prefix+objRing, shm.KindRing, co.Aux)
	if err != nil {
		return nil, err
	}
	parts := seg.Info().Slots
	if len(cmem) < ctlSize(parts) {
		return nil, corruptf("control block of %d bytes for %d participants", len(cmem), parts)
	}
	c := ctl{cmem}
	mode := Mode(c.u32(cMode).Load())
	maxMsg := uint64(c.u32(cMaxMsg).Load())
	capWord := c.u64(cCapacity).Load()
	q = &Queue{seg: seg, mode: mode, ctl: c, maxMsg: int(maxMsg), pspin: newSpinner(o.Spin), cspin: newSpinner(o.Spin), busy: o.BusyPoll}
	var ss uint64 // MPMC slot size, read once
	switch {
	case mode != Mode(co.Aux):
		return nil, corruptf("mode %d, object says %d", mode, co.Aux)
	case mode == SPSC:
		if capWord != uint64(len(ring)) || capWord < 64 || capWord&(capWord-1) != 0 || 2*recSize(maxMsg) > capWord {
			return nil, corruptf("SPSC capacity %d, ring %d bytes, max message %d", capWord, len(ring), maxMsg)
		}
		q.sp = newSPSC(ring, maxMsg, c.u64(cTail), c.u64(cHead))
		q.capacity = int(capWord)
	case mode == MPMC:
		ss = uint64(c.u32(cSlotSize).Load())
		if capWord < 2 || capWord&(capWord-1) != 0 || ss < slotHdr+maxMsg || ss%8 != 0 ||
			ss > uint64(len(ring)) || capWord != uint64(len(ring))/ss || capWord*ss != uint64(len(ring)) {
			return nil, corruptf("MPMC %d slots of %d bytes, ring %d bytes, max message %d", capWord, ss, len(ring), maxMsg)
		}
		q.capacity = int(capWord)
	default:
		return nil, shm.ErrIncompatible
	}
	slot := seg.Self().Slot()
	q.line = cmem[cStats+statsLine*slot : cStats+statsLine*(slot+1)]
	if mode == MPMC {
		q.mp = &mpmc{
			data: ring, nslots: capWord, mask: capWord - 1, slotSize: ss, maxMsg: maxMsg,
			tail: c.u64(cTail), head: c.u64(cHead), claimPut: q.u64(sClaimPut), claimGet: q.u64(sClaimGet),
		}
		// A previous holder of our participant slot may have died with a
		// claim outstanding; its claim was recovered or will be, by the
		// "no live claimant" rule. Ours starts clean.
		q.mp.claimPut.Store(0)
		q.mp.claimGet.Store(0)
	}
	q.notEmpty = notifier{seg: seg, seq: c.u32(cNotEmpty), waiters: c.u32(cNotEmpty + 4), gate: new(futex.Gate)}
	q.notFull = notifier{seg: seg, seq: c.u32(cNotFull), waiters: c.u32(cNotFull + 4), gate: new(futex.Gate)}
	return q, nil
}

func (q *Queue) u64(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&q.line[off])) }

// bump adds to one of this handle's counters. Only this handle writes its
// line, so a plain add suffices; readers see it eventually.
func (q *Queue) bump(off int, d uint64) { *(*uint64)(unsafe.Pointer(&q.line[off])) += d }

func (q *Queue) counter(off int) *uint64 { return (*uint64)(unsafe.Pointer(&q.line[off])) }

func (q *Queue) closed() bool { return q.ctl.u32(cClosed).Load() != 0 }

func (q *Queue) fail(err error) error {
	q.broken.CompareAndSwap(nil, &err)
	return err
}

func (q *Queue) brokenErr() error {
	if p := q.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// SetBusyPoll makes this handle's blocked calls spin instead of sleeping.
func (q *Queue) SetBusyPoll(on bool) { q.busy = on }

// SetSpin sets the bound on this handle's spinning before it sleeps
// (negative: never spin). See Options.Spin.
func (q *Queue) SetSpin(d time.Duration) {
	q.pmu.Lock()
	q.pspin = newSpinner(d)
	q.pmu.Unlock()
	q.cmu.Lock()
	q.cspin = newSpinner(d)
	q.cmu.Unlock()
}

// takeRole claims an SPSC side for this handle. A side held by a dead
// participant (kernel-proven) is taken over.
func (q *Queue) takeRole(off int) error {
	w := q.ctl.u32(off)
	self := uint32(q.seg.Self())
	for {
		v := w.Load()
		if v == self {
			return nil
		}
		if v != 0 && q.seg.Alive(shm.Token(v)) {
			return ErrRole
		}
		// Invariant: the word names at most one live holder of the side.
		if w.CompareAndSwap(v, self) {
			return nil
		}
	}
}

func (q *Queue) prodReady() error {
	if q.detached.Load() {
		return shm.ErrClosed
	}
	if err := q.brokenErr(); err != nil {
		return err
	}
	if q.closed() {
		return ErrClosed
	}
	if q.mode == SPSC {
		return q.takeProducer()
	}
	return nil
}

// takeProducer claims the SPSC producer side for this handle, once, and
// picks up the ring where the previous holder left it. Caller holds pmu.
func (q *Queue) takeProducer() error {
	if q.prodRole {
		return nil
	}
	if err := q.takeRole(cProducer); err != nil {
		return err
	}
	if err := q.sp.attachProducer(); err != nil {
		return q.fail(err)
	}
	q.prodRole = true
	return nil
}

// takeConsumer is takeProducer for the consumer side. Caller holds cmu.
func (q *Queue) takeConsumer() error {
	if q.consRole {
		return nil
	}
	if err := q.takeRole(cConsumer); err != nil {
		return err
	}
	if err := q.sp.attachConsumer(); err != nil {
		return q.fail(err)
	}
	q.consRole = true
	return nil
}

func (q *Queue) consReady() error {
	if q.detached.Load() {
		return shm.ErrClosed
	}
	if err := q.brokenErr(); err != nil {
		return err
	}
	if q.mode == SPSC {
		return q.takeConsumer()
	}
	return nil
}

// ---- producing ----

// TryPut puts msg if there is room now, else returns ErrFull.
func (q *Queue) TryPut(msg []byte) error {
	q.pmu.Lock()
	err := q.tryPut(msg)
	q.pmu.Unlock()
	return err
}

// Put puts msg, waiting for room until ctx ends (ctx.Err()). After Close it
// returns ErrClosed.
func (q *Queue) Put(ctx context.Context, msg []byte) error {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	err := q.tryPut(msg)
	if err != ErrFull {
		return err
	}
	return q.putSlow(ctx, msg)
}

func (q *Queue) putSlow(ctx context.Context, msg []byte) error {
	if err := q.seg.Pin(); err != nil {
		return err
	}
	defer q.seg.Unpin()
	for {
		if err := q.waitRoom(ctx, len(msg)); err != nil {
			return err
		}
		if err := q.tryPut(msg); err != ErrFull {
			return err
		}
	}
}

func (q *Queue) tryPut(msg []byte) error {
	if err := q.prodReady(); err != nil {
		return err
	}
	if len(msg) > q.maxMsg {
		return ErrTooLarge
	}
	if q.mode == MPMC {
		pos, err := q.claimPut()
		if err != nil {
			return err
		}
		copy(q.mp.payload(pos, len(msg)), msg)
		q.mp.publish(pos, len(msg), recData)
	} else {
		off, end, ok, err := q.sp.reserve(uint64(len(msg)))
		if err != nil {
			return q.fail(err)
		}
		if !ok {
			q.bump(sFull, 1)
			return ErrFull
		}
		q.sp.write(off, msg)
		if q.closed() {
			return ErrClosed // not published: as if never put
		}
		q.sp.publish(end)
	}
	q.bump(sPuts, 1)
	q.bump(sBytesIn, uint64(len(msg)))
	if q.notEmpty.wake(1) {
		q.bump(sWakeups, 1)
	}
	if q.mode == MPMC {
		q.chainProducers()
	}
	return nil
}

// abandonPut publishes a claimed MPMC position as a record consumers
// skip, and wakes one that may wait on it.
func (q *Queue) abandonPut(pos uint64) {
	q.mp.publish(pos, 0, recDead)
	if q.notEmpty.wake(1) {
		q.bump(sWakeups, 1)
	}
}

// claimPut takes an MPMC position, or returns ErrClosed (re-checked after
// the claim, which is then abandoned) or ErrFull (recovering a slot
// whose consumer died, when that is what blocks it).
func (q *Queue) claimPut() (uint64, error) {
	for {
		pos, st, err := q.mp.claimPutPos()
		if err != nil {
			return 0, q.fail(err)
		}
		switch st {
		case claimed:
			if !q.pStuck.since.IsZero() {
				q.pStuck = stuckState{}
			}
			if testHookClaimed != nil {
				testHookClaimed()
			}
			if q.closed() {
				// Closed since prodReady looked: consumers may have
				// drained already. Hand the slot over empty and say so.
				q.abandonPut(pos)
				return 0, ErrClosed
			}
			return pos, nil
		case stuck:
			if q.overdue(&q.pStuck, pos) && q.recoverConsumer(pos) {
				continue
			}
		}
		q.bump(sFull, 1)
		return 0, ErrFull
	}
}

// overdue reports whether this side has been stuck on pos for stuckGrace.
func (q *Queue) overdue(s *stuckState, pos uint64) bool {
	now := time.Now()
	if s.since.IsZero() || s.pos != pos {
		s.pos, s.since = pos, now
		return false
	}
	return now.Sub(s.since) >= stuckGrace
}

// waitRoom sleeps until a message of n bytes may fit, the queue closes,
// or ctx ends. The caller holds a pin.
func (q *Queue) waitRoom(ctx context.Context, n int) error {
	ready := func() bool {
		if q.closed() {
			return true
		}
		if q.mode == MPMC {
			return q.mp.readyPut(!q.pStuck.since.IsZero())
		}
		return q.sp.room(uint64(n))
	}
	return q.wait(ctx, &q.notFull, &q.pspin, ready, &q.pStuck)
}

func (q *Queue) wait(ctx context.Context, n *notifier, sp *spinner, ready func() bool, st *stuckState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if q.busy {
		for i := 0; !ready(); i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if q.seg.Closing() {
				return shm.ErrClosed
			}
			if i%1024 == 1023 {
				osYield() // a peer sharing this CPU gets to run
			}
			if !st.since.IsZero() && i%1024 == 1023 {
				return nil // let the caller look at a stuck claim again
			}
		}
		return nil
	}
	var limit time.Time
	if !st.since.IsZero() {
		limit = time.Now().Add(stuckGrace)
	}
	err := n.sleep(ctx, sp, limit, ready, q.counter(sSleeps))
	if errors.Is(err, futex.ErrTimeout) {
		return nil // the caller re-checks, and recovers a dead claimant
	}
	return err
}

// ---- consuming ----

// TryGet returns the next message (a copy) if there is one, else ErrEmpty;
// ErrClosed once the queue is closed and drained.
func (q *Queue) TryGet() ([]byte, error) {
	q.cmu.Lock()
	out, _, err := q.tryGet(nil, true)
	q.cmu.Unlock()
	return out, err
}

// Get returns the next message (a copy), waiting until there is one, the
// queue is closed and drained (ErrClosed), or ctx ends.
func (q *Queue) Get(ctx context.Context) ([]byte, error) {
	q.cmu.Lock()
	defer q.cmu.Unlock()
	out, _, err := q.tryGet(nil, true)
	if err != ErrEmpty {
		return out, err
	}
	out, _, err = q.getSlow(ctx, nil, true)
	return out, err
}

// TryGetInto is TryGet into buf; it does not allocate.
func (q *Queue) TryGetInto(buf []byte) (int, error) {
	q.cmu.Lock()
	_, n, err := q.tryGet(buf, false)
	q.cmu.Unlock()
	return n, err
}

// GetInto copies the next message into buf and returns its length. It does
// not allocate. If buf is too short it returns ErrShortBuffer and leaves
// the message in the queue.
func (q *Queue) GetInto(ctx context.Context, buf []byte) (int, error) {
	q.cmu.Lock()
	defer q.cmu.Unlock()
	_, n, err := q.tryGet(buf, false)
	if err != ErrEmpty {
		return n, err
	}
	_, n, err = q.getSlow(ctx, buf, false)
	return n, err
}

func (q *Queue) getSlow(ctx context.Context, buf []byte, alloc bool) ([]byte, int, error) {
	if err := q.seg.Pin(); err != nil {
		return nil, 0, err
	}
	defer q.seg.Unpin()
	for {
		if err := q.waitMsg(ctx); err != nil {
			return nil, 0, err
		}
		out, n, err := q.tryGet(buf, alloc)
		if err != ErrEmpty {
			return out, n, err
		}
	}
}

func (q *Queue) waitMsg(ctx context.Context) error {
	ready := func() bool {
		if q.mode == MPMC {
			stuck := !q.cStuck.since.IsZero()
			// Closed is final only once no claimed position stands at head.
			return q.mp.readyGet(stuck) || q.closed() && !stuck
		}
		return q.closed() || q.sp.ready()
	}
	return q.wait(ctx, &q.notEmpty, &q.cspin, ready, &q.cStuck)
}

// next finds the next message in place without consuming it. For MPMC it
// claims the position (the caller must finish with q.finishGet).
func (q *Queue) next(limit int) (msg []byte, end uint64, flags uint32, err error) {
	if err := q.consReady(); err != nil {
		return nil, 0, 0, err
	}
	looks := 0 // bounds the closed-drain retries below
	for attempt := 0; ; attempt++ {
		var ok bool
		if q.mode == MPMC {
			msg, end, flags, ok, err = q.nextMPMC(limit)
		} else {
			msg, end, ok, err = q.sp.next()
			if err != nil {
				err = q.fail(err)
			} else if ok && limit >= 0 && len(msg) > limit {
				err = ErrShortBuffer
			} else if !ok {
				// Empty: next published our head; a producer that waits
				// for room must hear of it.
				q.wakeProducers(1)
			}
			flags = recData
		}
		if err != nil || ok {
			return msg, end, flags, err
		}
		// Empty. If closed, look once more: the last messages were
		// published before the close flag, so a second look after seeing
		// the flag finds them.
		if attempt == 0 && q.closed() {
			continue
		}
		if attempt > 0 {
			// Closed. A position still claimed but unpublished stands
			// between us and what follows: recover it now if its producer
			// is dead; if it lives, its message is still coming.
			if q.mode == MPMC && q.mp.tail.Load() != q.mp.head.Load() {
				p := q.mp.head.Load()
				sq := q.mp.seq(p).Load() // once: it may change under us
				retry := sq != p         // published, or taken, since we looked
				if !retry {
					retry = q.recoverProducer(p)
				}
				if looks++; retry && looks < 64 { // bounded: a scribbled seq must not spin us
					attempt = 0
					continue
				}
				q.overdue(&q.cStuck, p) // wait for it on the stuck timer
				q.bump(sEmpty, 1)
				return nil, 0, 0, ErrEmpty
			}
			return nil, 0, 0, ErrClosed
		}
		q.bump(sEmpty, 1)
		return nil, 0, 0, ErrEmpty
	}
}

func (q *Queue) nextMPMC(limit int) ([]byte, uint64, uint32, bool, error) {
	for {
		pos, n, flags, st, err := q.mp.claimGetPos(limit)
		if err == ErrShortBuffer {
			return nil, 0, 0, false, err
		}
		if err != nil {
			return nil, 0, 0, false, q.fail(err)
		}
		switch st {
		case claimed:
			if !q.cStuck.since.IsZero() {
				q.cStuck = stuckState{}
			}
			if flags == recDead {
				q.mp.free(pos) // padded over for a dead producer: skip
				continue
			}
			if testHookGot != nil {
				testHookGot()
			}
			return q.mp.payload(pos, n), pos, flags, true, nil
		case stuck:
			if q.overdue(&q.cStuck, pos) && q.recoverProducer(pos) {
				continue
			}
		}
		return nil, 0, 0, false, nil
	}
}

// finishGet consumes what next returned. MPMC frees the slot at once;
// SPSC only advances (see releaseSPSC).
func (q *Queue) finishGet(end uint64, n int) {
	if q.mode == MPMC {
		q.mp.free(end)
	} else {
		q.sp.consume(end)
	}
	q.bump(sGets, 1)
	q.bump(sBytesOut, uint64(n))
}

// chainConsumers passes a wakeup on. A publish wakes one sleeping
// consumer, but the consumer that takes a message is not always the one
// woken (another may be spinning or draining on the fast path), and a
// consumer may stop taking messages while some remain. So whoever takes a
// message from an MPMC ring and sees another one published, with a
// sleeper announced, wakes one more: while messages remain, sleepers keep
// being woken. The cost when nobody sleeps is one load of the waiters word.
func (q *Queue) chainConsumers() {
	if q.notEmpty.waiters.Load() != 0 && q.mp.readyGet(true) {
		if q.notEmpty.wake(1) {
			q.bump(sWakeups, 1)
		}
	}
}

// chainProducers is chainConsumers for producers waiting for free slots.
func (q *Queue) chainProducers() {
	if q.notFull.waiters.Load() != 0 && q.mp.readyPut(true) {
		if q.notFull.wake(1) {
			q.bump(sWakeups, 1)
		}
	}
}

// wakeProducers makes freed space visible and wakes up to k sleeping
// producers. For SPSC the head is published lazily, but always when a
// producer announced it waits: it announces before re-reading head, and we
// load the announcement after our store, so one of us sees the other.
func (q *Queue) wakeProducers(k int) {
	if q.mode == MPMC {
		q.chainConsumers()
	}
	if q.mode == SPSC {
		if !q.sp.lazyRelease() {
			if q.notFull.waiters.Load() == 0 {
				return
			}
			q.sp.releaseHead()
		}
	}
	if q.notFull.wake(k) {
		q.bump(sWakeups, 1)
	}
}

func (q *Queue) tryGet(buf []byte, alloc bool) ([]byte, int, error) {
	limit := len(buf)
	if alloc {
		limit = -1
	}
	msg, end, _, err := q.next(limit)
	if err != nil {
		return nil, 0, err
	}
	var out []byte
	n := len(msg)
	if alloc {
		out = make([]byte, n)
		copy(out, msg)
	} else {
		copy(buf, msg)
	}
	q.finishGet(end, n)
	q.wakeProducers(1)
	return out, n, nil
}

// ---- batches ----

// PutBatch puts every message of msgs, in order, waiting for room as Put
// does. Messages that fit together are published with one store and at
// most one wakeup. It returns how many were put.
func (q *Queue) PutBatch(ctx context.Context, msgs [][]byte) (int, error) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	done := 0
	pinned := false
	defer func() {
		if pinned {
			q.seg.Unpin()
		}
	}()
	for done < len(msgs) {
		k, err := q.tryPutBatch(msgs[done:])
		done += k
		if err != nil && err != ErrFull {
			return done, err
		}
		if k > 0 {
			continue
		}
		if !pinned {
			if err := q.seg.Pin(); err != nil {
				return done, err
			}
			pinned = true
		}
		if err := q.waitRoom(ctx, len(msgs[done])); err != nil {
			return done, err
		}
	}
	return done, nil
}

func (q *Queue) tryPutBatch(msgs [][]byte) (int, error) {
	if err := q.prodReady(); err != nil {
		return 0, err
	}
	k := 0
	var bytes uint64
	var err error
	for ; k < len(msgs); k++ {
		m := msgs[k]
		if len(m) > q.maxMsg {
			err = ErrTooLarge
			break
		}
		if q.mode == MPMC {
			pos, cerr := q.claimPut()
			if cerr != nil {
				err = cerr
				break
			}
			copy(q.mp.payload(pos, len(m)), m)
			q.mp.publish(pos, len(m), recData)
		} else {
			off, end, ok, rerr := q.sp.reserve(uint64(len(m)))
			if rerr != nil {
				err = q.fail(rerr)
				break
			}
			if !ok {
				q.bump(sFull, 1)
				err = ErrFull
				break
			}
			q.sp.write(off, m)
			if q.closed() {
				err = ErrClosed // this one and the rest are not published
				break
			}
			q.sp.advance(end)
		}
		bytes += uint64(len(m))
	}
	if k > 0 {
		if q.mode == SPSC {
			q.sp.flush()
		}
		q.bump(sPuts, uint64(k))
		q.bump(sBytesIn, bytes)
		if q.notEmpty.wake(k) {
			q.bump(sWakeups, 1)
		}
		if q.mode == MPMC {
			q.chainProducers()
		}
	}
	return k, err
}

// GetBatch waits for at least one message, then takes as many as are
// queued and fit, copying them back to back into buf and their lengths
// into sizes. It returns how many it took; it does not allocate. The space
// they held is freed with one store and at most one wakeup.
func (q *Queue) GetBatch(ctx context.Context, buf []byte, sizes []int) (int, error) {
	if len(sizes) == 0 {
		return 0, ErrInvalid
	}
	q.cmu.Lock()
	defer q.cmu.Unlock()
	k, err := q.tryGetBatch(buf, sizes)
	if err != ErrEmpty {
		return k, err
	}
	if err := q.seg.Pin(); err != nil {
		return 0, err
	}
	defer q.seg.Unpin()
	for {
		if err := q.waitMsg(ctx); err != nil {
			return 0, err
		}
		if k, err := q.tryGetBatch(buf, sizes); err != ErrEmpty {
			return k, err
		}
	}
}

func (q *Queue) tryGetBatch(buf []byte, sizes []int) (int, error) {
	k, used := 0, 0
	var err error
	for k < len(sizes) {
		var msg []byte
		var end uint64
		msg, end, _, err = q.next(len(buf) - used)
		if err != nil {
			break
		}
		copy(buf[used:], msg)
		sizes[k] = len(msg)
		used += len(msg)
		q.finishGet(end, len(msg))
		k++
	}
	if k == 0 {
		return 0, err
	}
	q.wakeProducers(k)
	return k, nil
}

// ---- zero copy ----

// Reserve waits for room for an n-byte message and returns the space, in
// the ring, to write it in place. Commit publishes it. Between the two the
// handle's producer side is held: other goroutines' puts wait.
func (q *Queue) Reserve(ctx context.Context, n int) ([]byte, error) {
	if n < 0 {
		return nil, ErrInvalid
	}
	if n > q.maxMsg {
		return nil, ErrTooLarge
	}
	q.pmu.Lock()
	b, err := q.tryReserve(n)
	if err == ErrFull {
		if err = q.seg.Pin(); err == nil {
			for err == nil {
				if err = q.waitRoom(ctx, n); err == nil {
					if b, err = q.tryReserve(n); err != ErrFull {
						break
					}
					err = nil
				}
			}
			q.seg.Unpin()
		}
	}
	if err != nil {
		q.pmu.Unlock()
		return nil, err
	}
	return b, nil // pmu stays held until Commit
}

func (q *Queue) tryReserve(n int) ([]byte, error) {
	if err := q.prodReady(); err != nil {
		return nil, err
	}
	if q.mode == MPMC {
		pos, err := q.claimPut()
		if err != nil {
			return nil, err
		}
		q.resv = reservation{active: true, pos: pos, n: n}
		return q.mp.payload(pos, n), nil
	}
	off, end, ok, err := q.sp.reserve(uint64(n))
	if err != nil {
		return nil, q.fail(err)
	}
	if !ok {
		q.bump(sFull, 1)
		return nil, ErrFull
	}
	q.resv = reservation{active: true, off: off, end: end, n: n}
	return q.sp.data[off+recHdr : off+recHdr+uint64(n) : off+recHdr+uint64(n)], nil
}

// Commit publishes the first n bytes (n <= the reserved size) written into
// the space Reserve returned.
func (q *Queue) Commit(n int) error {
	if !q.resv.active {
		return ErrInvalid
	}
	r := q.resv
	if n < 0 || n > r.n {
		return ErrInvalid
	}
	q.resv = reservation{}
	if q.mode == SPSC && q.closed() {
		// An SPSC reservation is invisible until published, so a consumer
		// draining the closed queue may be gone: do not publish. (An MPMC
		// reservation is a claim that draining consumers wait for; it
		// was checked against Close right after it was taken.)
		q.pmu.Unlock()
		return ErrClosed
	}
	if q.mode == MPMC {
		q.mp.publish(r.pos, n, recData)
	} else {
		putHdr(q.sp.data[r.off:], uint32(n), recData)
		q.sp.publish(r.end - recSize(uint64(r.n)) + recSize(uint64(n)))
	}
	q.bump(sPuts, 1)
	q.bump(sBytesIn, uint64(n))
	if q.notEmpty.wake(1) {
		q.bump(sWakeups, 1)
	}
	q.pmu.Unlock()
	return nil
}

// Peek waits for the next message and returns it in place, without
// copying. It stays in the queue (and the handle's consumer side stays
// held) until Release. The slice must not be used after Release.
func (q *Queue) Peek(ctx context.Context) ([]byte, error) {
	q.cmu.Lock()
	msg, err := q.tryPeek()
	if err == ErrEmpty {
		if err = q.seg.Pin(); err == nil {
			for {
				if err = q.waitMsg(ctx); err != nil {
					break
				}
				if msg, err = q.tryPeek(); err != ErrEmpty {
					break
				}
			}
			q.seg.Unpin()
		}
	}
	if err != nil {
		q.cmu.Unlock()
		return nil, err
	}
	return msg, nil // cmu stays held until Release
}

func (q *Queue) tryPeek() ([]byte, error) {
	msg, end, _, err := q.next(-1)
	if err != nil {
		return nil, err
	}
	q.peek = peekState{active: true, end: end}
	q.bump(sBytesOut, uint64(len(msg)))
	return msg, nil
}

// Release consumes the message Peek returned.
func (q *Queue) Release() error {
	if !q.peek.active {
		return ErrInvalid
	}
	p := q.peek
	q.peek = peekState{}
	if q.mode == MPMC {
		q.mp.free(p.end)
	} else {
		q.sp.consume(p.end)
	}
	q.bump(sGets, 1)
	q.wakeProducers(1)
	q.cmu.Unlock()
	return nil
}

// ---- state ----

// Close closes the queue for every process: puts fail with ErrClosed;
// consumers receive what was already published, then ErrClosed. Blocked
// producers and consumers are woken. It does not detach this handle.
func (q *Queue) Close() error {
	if err := q.seg.Pin(); err != nil {
		return err
	}
	defer q.seg.Unpin()
	// Invariant: once set, closed never clears. It is stored after every
	// put that returned nil in this process, so consumers that see it and
	// look once more find those messages.
	q.ctl.u32(cClosed).Store(1)
	q.notEmpty.wake(futex.All)
	q.notFull.wake(futex.All)
	return nil
}

// Detach releases this handle: its SPSC side (if held) and its mapping.
// Calls blocked on it return shm.ErrClosed. The queue itself stays.
func (q *Queue) Detach() error {
	if err := q.seg.Pin(); err != nil {
		return err
	}
	q.detached.Store(true)
	if q.sp != nil && q.consRole {
		// What this handle consumed is gone: the next consumer must not
		// get it again. (A pending Peek is not consumed: chead is before it.)
		q.sp.releaseHead()
	}
	self := uint32(q.seg.Self())
	// Release our SPSC sides: CAS from self only, never clearing a successor.
	q.ctl.u32(cProducer).CompareAndSwap(self, 0)
	q.ctl.u32(cConsumer).CompareAndSwap(self, 0)
	q.seg.Unpin()
	return q.seg.Close()
}

// Unlink removes the queue's name (see shm.Segment.Unlink).
func (q *Queue) Unlink() error { return q.seg.Unlink() }

// Unlink removes the named queue.
func Unlink(name string) error { return shm.Unlink(name) }

// File returns a new file of the queue's segment for a child process, which
// attaches with OpenFile. The caller closes it.
func (q *Queue) File() (*os.File, error) { return q.seg.File() }

// Segment returns the queue's segment.
func (q *Queue) Segment() *shm.Segment { return q.seg }

// Mode returns SPSC or MPMC.
func (q *Queue) Mode() Mode { return q.mode }

// MaxMessage returns the largest message the queue takes.
func (q *Queue) MaxMessage() int { return q.maxMsg }

// Cap returns the ring's capacity: bytes for SPSC, message slots for MPMC.
func (q *Queue) Cap() int { return q.capacity }

// Len returns how many messages are queued. For MPMC it is exact at the
// moment of reading (claimed positions included); for SPSC it is computed
// from the put and get counters and may lag by a message or two.
func (q *Queue) Len() int {
	if q.mode == MPMC {
		if q.seg.Pin() != nil {
			return 0
		}
		defer q.seg.Unpin()
		return int(q.mp.depth())
	}
	st := q.Stats()
	return st.Len
}

// Stats sums every participant's counters (zero after Detach).
func (q *Queue) Stats() Stats {
	if q.seg.Pin() != nil {
		return Stats{}
	}
	defer q.seg.Unpin()
	parts := (len(q.ctl.mem) - ctlFixed) / statsLine
	var st Stats
	for i := 0; i < parts; i++ {
		l := q.ctl.mem[cStats+statsLine*i:]
		rd := func(off int) uint64 { return (*atomic.Uint64)(unsafe.Pointer(&l[off])).Load() }
		st.Puts += rd(sPuts)
		st.Gets += rd(sGets)
		st.BytesIn += rd(sBytesIn)
		st.BytesOut += rd(sBytesOut)
		st.Sleeps += rd(sSleeps)
		st.Wakeups += rd(sWakeups)
		st.FullEvents += rd(sFull)
		st.EmptyEvents += rd(sEmpty)
	}
	st.DeadProducerSlots = q.ctl.u64(cDeadProd).Load()
	st.DeadConsumerLosses = q.ctl.u64(cDeadCons).Load()
	st.Closed = q.closed()
	st.At = time.Now()
	if q.mode == MPMC {
		st.Len = int(q.mp.depth())
	} else if st.Puts > st.Gets {
		st.Len = int(min(st.Puts-st.Gets, uint64(q.capacity/recHdr)))
	}
	return st
}

// ---- crash recovery (MPMC) ----

// claimantAlive reports whether a live participant's claim word at off
// equals v. See the MPMC protocol: the claimant stored its claim before
// taking the position, so if none is alive, the claimant died.
func (q *Queue) claimantAlive(off int, v uint64) bool {
	parts := (len(q.ctl.mem) - ctlFixed) / statsLine
	for i := 0; i < parts; i++ {
		w := (*atomic.Uint64)(unsafe.Pointer(&q.ctl.mem[cStats+statsLine*i+off]))
		if w.Load() != v {
			continue
		}
		if t := q.seg.SlotToken(i); t != 0 && q.seg.Alive(t) {
			return true
		}
	}
	return false
}

// recoverProducer pads over position pos if its producer died between
// claim and publish. It reports whether the slot changed (retry).
func (q *Queue) recoverProducer(pos uint64) bool {
	if q.claimantAlive(sClaimPut, pos+1) {
		return false
	}
	// Take position pos as its consumer would: the head CAS elects one
	// recoverer, which owns the slot until it frees it, so nothing is ever
	// written into a slot that the next lap may already own. (Writing a
	// "dead" header first and then CASing seq lost messages: a second
	// recoverer could write over the next lap's record.)
	q.mp.claimGet.Store(pos + 1)
	if q.mp.head.CompareAndSwap(pos, pos+1) {
		q.ctl.u64(cDeadProd).Add(1)
		// Invariant: seq == pos (claimed, never published): hand the slot
		// to the producer of the next lap.
		q.mp.seq(pos).CompareAndSwap(pos, pos+q.mp.nslots)
	} else {
		q.mp.claimGet.Store(0)
	}
	q.cStuck = stuckState{}
	return true
}

// recoverConsumer frees the slot of position pos if the consumer that
// took it died before freeing it; the message is lost and counted.
func (q *Queue) recoverConsumer(pos uint64) bool {
	if q.claimantAlive(sClaimGet, pos+1) {
		return false
	}
	// Invariant: the CAS frees the slot for the next lap exactly once.
	if q.mp.seq(pos).CompareAndSwap(pos+1, pos+q.mp.nslots) {
		q.ctl.u64(cDeadCons).Add(1)
	} else {
		// A consumer that died recovering a dead producer's position,
		// between its head CAS and freeing the slot: the loss was
		// counted as a dead producer slot already.
		q.mp.seq(pos).CompareAndSwap(pos, pos+q.mp.nslots)
	}
	q.pStuck = stuckState{}
	return true
}
