package futex

// EventCount: the one sleep/wakeup primitive of shmkit.
//
// Every blocking call (a lock, a semaphore, an event, a condition, a
// barrier, a queue that is empty or full, a Join, a pipe) waits for some
// state in shared memory to change. The state and the code that changes
// it belong to the caller; the EventCount only makes sure that a waiter
// who finds the state unchanged and goes to sleep is woken by the change.
// It is the runtime's sema.go for processes: "a way to implement sleep and
// wakeup such that every sleep is paired with a wakeup".
//
// # Layout (shared memory, little-endian, 8-byte aligned)
//
//	@0        seq      uint32      the futex word; bumped by each wakeup
//	@4        reserved uint32
//	@8        mask     [W]uint64   bit i: participant slot i announced a sleeper
//	@8+8W     entries  [N]uint32   token of the participant that set bit i
//
// N is the segment's participant-slot count and W = ceil(N/64). A zeroed
// region is an EventCount with nobody waiting.
//
// # Protocol
//
// Waiter, after its own check of the state failed:
//
//	announce: entries[me] = token; mask |= bit(me)     (first local waiter)
//	loop:     s := seq; re-check the state → done if it changed
//	          FUTEX_WAIT(seq, s)                       (one goroutine per process)
//	withdraw: entries[me] = 0; mask &^= bit(me)        (last local waiter)
//
// Waker, after it changed the state (a publishing atomic store or CAS):
//
//	if mask != 0 { seq++; FUTEX_WAKE(seq, n) }
//
// Why no wakeup is lost. All atomics here and in the callers are
// sequentially consistent (sync/atomic). If the waker's load of mask saw
// no bit of ours, our announcement comes later in the total order than
// that load, so our re-check of the state comes after the waker's change
// and sees it. If the waker saw our bit, it bumps seq after its change: a
// waiter that read s before the bump fails FUTEX_WAIT with EAGAIN or is
// asleep and woken; one that read s after the bump re-checks after the
// change. The cost on the fast path is loading W words of a line that is
// written only when someone goes to sleep.
//
// Within a process, goroutines share the process's announcement (a count
// under a mutex; the bit is set while it is non-zero) and at most one of
// them sleeps in the kernel (the Gate): a goroutine in FUTEX_WAIT holds an
// OS thread, and a thousand waiters must not hold a thousand. The others
// queue on the Gate in the Go scheduler, honouring their contexts. The
// kernel sleeper, once woken, leaves the Gate, and the next one re-checks
// the state before it sleeps: a wakeup reaches the process, whichever of
// its goroutines it was meant for.
//
// Giving up. A waiter whose context ends (or whose deadline passes) may
// have consumed a FUTEX_WAKE meant for another: if seq moved since it read
// s, it passes one wakeup on before it returns. A context is watched by a
// callback that bumps seq and wakes the sleepers of this process only
// (FUTEX_WAKE_BITSET with the process's slot bit; other processes' sleepers
// see at most a spurious wakeup): the bump makes a FUTEX_WAIT that had not
// started yet fail at once, so the cancellation is never missed.
//
// # Dead sleepers
//
// A process killed while announced leaves its bit set; wakers would then
// make a FUTEX_WAKE syscall on every change, forever. The entry beside the
// bit names the announcer, so it can be proven dead: a waker whose
// FUTEX_WAKE woke nobody while bits were set scans them (at most once per
// ReclaimInterval per handle), and clears each whose participant the
// kernel proves dead (its token's generation is gone, or its OFD lock).
// The fast path is then syscall-free again.
//
// Clearing a bit can race with a live participant of the same slot (a new
// process registered there) announcing itself, and a waker could miss that
// announcement while the bit is clear. So after clearing bit i the
// reclaimer reads entries[i] again; if it is set, it restores the bit and
// wakes every sleeper (seq++, FUTEX_WAKE all). The announcer stored its
// entry before setting its bit, so if the reclaimer's clear erased the new
// bit, the entry read after the clear sees the announcer, and the wake
// comes after any change the missed waker made: the announcer's FUTEX_WAIT
// fails or is woken, as in the argument above. internal/futex/eventcount.pml
// checks this with spin, with a crash action and mutants.

import (
	"cmp"
	"context"
	"errors"
	"math"
	"math/bits"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// All wakes every sleeper.
const All = math.MaxInt32

// ReclaimInterval is the least time between two scans for dead sleepers by
// one EventCount handle.
const ReclaimInterval = 5 * time.Millisecond

var (
	// ErrTimeout: a wait's deadline passed.
	ErrTimeout = errors.New("futex: timeout")
	// ErrClosed: the EventCount's handle was closed while a call waited.
	ErrClosed = errors.New("futex: closed")
	// ErrFutex wraps an unexpected errno from futex(2) (EFAULT, when a peer
	// truncated the memory under the word).
	ErrFutex = errors.New("futex: syscall failed")
	// ErrLayout: the memory given to NewEventCount is too small or
	// misaligned.
	ErrLayout = errors.New("futex: bad event count memory")
)

const ecHeader = 8

func maskWords(slots int) int { return (slots + 63) / 64 }

// Size returns the bytes an EventCount takes for a segment of slots
// participant slots (a multiple of 8).
func Size(slots int) int { return (ecHeader + 8*maskWords(slots) + 4*slots + 7) &^ 7 }

// Host is what an EventCount needs from the segment it lives in.
type Host interface {
	// Alive reports whether the participant named by token is attached.
	// It must err on the side of alive: a live sleeper's bit must never
	// be cleared.
	Alive(token uint32) bool
}

// EventCount is one attachment's handle on an event count in shared
// memory. All handles on one event count within one attachment must be
// the same *EventCount (the segment keeps them): they share the process's
// announcement and Gate. It is safe for concurrent use.
type EventCount struct {
	seq     *atomic.Uint32
	mask    []atomic.Uint64
	entries []atomic.Uint32
	self    uint32 // this attachment's participant token (nonzero)
	slot    int
	bit     uint32 // FUTEX bitset of this process's sleepers: 1 << (slot%32)
	host    Host

	closed    atomic.Bool
	closing   chan struct{} // closed by Close
	once      sync.Once
	closedErr error // what calls return after Close

	mu        sync.Mutex
	announced int // goroutines of this attachment between announce and withdraw
	gate      Gate

	nextScan  atomic.Int64  // monotonic ns (see now): earliest next reclaim scan
	wakes     atomic.Uint64 // FUTEX_WAKE calls made through this handle
	sleeps    atomic.Uint64 // FUTEX_WAIT calls made through this handle
	reclaimed atomic.Uint64 // dead sleepers' bits cleared by this handle
}

// NewEventCount returns a handle on the event count in mem, which holds
// Size(slots) bytes at an 8-byte aligned address, for the participant
// self in slot. Calls interrupted by Close return closedErr (ErrClosed if
// nil).
func NewEventCount(mem []byte, slots, slot int, self uint32, host Host, closedErr error) (*EventCount, error) {
	if slots <= 0 || slot < 0 || slot >= slots || self == 0 || len(mem) < Size(slots) ||
		uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return nil, ErrLayout
	}
	w := maskWords(slots)
	base := unsafe.Pointer(unsafe.SliceData(mem))
	return &EventCount{
		seq:       (*atomic.Uint32)(base),
		mask:      unsafe.Slice((*atomic.Uint64)(unsafe.Add(base, ecHeader)), w),
		entries:   unsafe.Slice((*atomic.Uint32)(unsafe.Add(base, ecHeader+8*w)), slots),
		self:      self,
		slot:      slot,
		bit:       1 << (slot % 32),
		host:      host,
		closing:   make(chan struct{}),
		closedErr: cmp.Or(closedErr, ErrClosed),
	}, nil
}

// Seq returns the futex word, for inspection.
func (e *EventCount) Seq() *atomic.Uint32 { return e.seq }

// Waiting reports whether a sleeper may be announced: the waker's check.
func (e *EventCount) Waiting() bool {
	if e.mask[0].Load() != 0 {
		return true
	}
	for i := 1; i < len(e.mask); i++ {
		if e.mask[i].Load() != 0 {
			return true
		}
	}
	return false
}

// Notify wakes up to n sleepers, if any announced itself. Call it after the
// change that the sleepers wait for. It makes no syscall when nobody is
// announced, and reports whether it made one.
func (e *EventCount) Notify(n int) bool {
	if !e.Waiting() {
		return false
	}
	e.notifySlow(n)
	return true
}

func (e *EventCount) notifySlow(n int) {
	// Invariant: seq moves after the caller's change and before the wake,
	// so a sleeper that read seq earlier cannot sleep through it.
	e.seq.Add(1)
	e.wakes.Add(1)
	woke, err := Wake(e.seq, n)
	if err == nil && woke == 0 {
		// Announced but nobody asleep: a sleeper between its announcement
		// and FUTEX_WAIT, one already woken, or one that died.
		e.maybeReclaim()
	}
}

// interrupt wakes this process's kernel sleeper so that it looks at its
// context, deadline or the closed flag again. The seq bump makes a
// FUTEX_WAIT that has not started yet return at once.
func (e *EventCount) interrupt() {
	// It runs on a context's AfterFunc goroutine and in Close, outside
	// any caller's fault guard: a peer that truncated a named segment
	// must not crash us here (the sleeper's own futex call gets EFAULT).
	defer ignoreFault(debug.SetPanicOnFault(true))
	e.seq.Add(1)
	wakeBitset(e.seq, All, e.bit)
}

// ignoreFault, deferred with the previous SetPanicOnFault setting, drops a
// memory fault and lets any other panic go on.
func ignoreFault(old bool) {
	r := recover()
	debug.SetPanicOnFault(old)
	if r == nil {
		return
	}
	if _, fault := r.(interface{ Addr() uintptr }); !fault {
		panic(r)
	}
}

// Interrupt makes this process's waiters re-check their state (for a
// caller-side condition that is not in shared memory, such as a deadline
// moved by another goroutine). Other processes see at most a spurious
// wakeup.
func (e *EventCount) Interrupt() { e.interrupt() }

// Close makes every call waiting on this handle, and every later one that
// would sleep, return the closed error. The shared state is untouched.
func (e *EventCount) Close() {
	e.once.Do(func() {
		e.closed.Store(true)
		close(e.closing)
	})
	e.interrupt()
}

// Closed reports whether Close was called.
func (e *EventCount) Closed() bool { return e.closed.Load() }

// Wakes reports how many FUTEX_WAKE calls this handle made, Sleeps how
// many FUTEX_WAIT calls, and Reclaimed how many dead sleepers'
// announcements it cleared.
func (e *EventCount) Wakes() uint64     { return e.wakes.Load() }
func (e *EventCount) Sleeps() uint64    { return e.sleeps.Load() }
func (e *EventCount) Reclaimed() uint64 { return e.reclaimed.Load() }

// Wait returns once ready() holds (nil), ctx ends (ctx's error), the
// deadline passes (ErrTimeout; a zero deadline means none) or the handle
// closes (the closed error given to NewEventCount). It spins first (sp; nil spins not at all), then
// announces itself and sleeps. ready must read the shared state afresh on
// every call, and the caller must keep the memory mapped until Wait
// returns.
func (e *EventCount) Wait(ctx context.Context, deadline time.Time, sp *Spinner, ready func() bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if sp.Polling() {
		return e.poll(ctx, deadline, ready)
	}
	start := time.Now()
	if sp.spin(start, ready) {
		return nil
	}
	defer func() { sp.learn(time.Since(start)) }()
	e.announce()
	defer e.withdraw()
	for {
		s := e.seq.Load()
		if ready() {
			return nil
		}
		if err := e.sleep(ctx, s, deadline); err != nil {
			if ready() {
				return nil // act on it: no wakeup is swallowed
			}
			e.passOn(s)
			return err
		}
	}
}

// passOn hands on a wakeup that a waiter giving up may have consumed: seq
// moved since the waiter read s.
func (e *EventCount) passOn(s uint32) {
	if e.seq.Load() != s && e.Waiting() {
		e.notifySlow(1)
	}
}

// poll is Wait in poll mode: check without sleeping, yielding the CPU now
// and then, and the context, deadline and closed flag every 256 checks.
func (e *EventCount) poll(ctx context.Context, deadline time.Time, ready func() bool) error {
	for i := 1; !ready(); i++ {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.closed.Load() {
				return e.closedErr
			}
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				return ErrTimeout
			}
			if i&1023 == 0 {
				yield()
			}
		}
	}
	return nil
}

// Prepare announces a waiter and returns the sequence to sleep on (the
// first half of Wait, for callers that must announce before releasing a
// lock, as Cond does). Every Prepare must be followed by Done.
func (e *EventCount) Prepare() uint32 {
	e.announce()
	return e.seq.Load()
}

// Sleep sleeps until seq moves from s (nil, possibly spuriously), ctx ends,
// the deadline passes or the handle closes. The caller announced itself
// with Prepare. On an error it passes on a wakeup it may have consumed.
func (e *EventCount) Sleep(ctx context.Context, s uint32, deadline time.Time) error {
	if err := e.sleep(ctx, s, deadline); err != nil {
		if e.seq.Load() != s {
			return nil // moved: report the wakeup rather than swallow it
		}
		return err
	}
	return nil
}

// Done withdraws the announcement of Prepare.
func (e *EventCount) Done() { e.withdraw() }

func (e *EventCount) announce() {
	e.mu.Lock()
	defer e.mu.Unlock() // a fault on a truncated mapping must not leave it held
	if e.announced == 0 {
		// Invariant: the entry is stored before the bit is set, so whoever
		// sees the bit finds who set it (the reclaimer's repair relies on
		// it, see the protocol).
		e.entries[e.slot].Store(e.self)
		e.mask[e.slot/64].Or(1 << (e.slot % 64))
	}
	e.announced++
}

func (e *EventCount) withdraw() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.announced--; e.announced == 0 {
		// Entry first, then bit: a reclaimer that sees the bit without an
		// entry clears the bit, which is what we are doing anyway.
		e.entries[e.slot].CompareAndSwap(e.self, 0)
		e.mask[e.slot/64].And(^(uint64(1) << (e.slot % 64)))
	}
}

// sleep sleeps on seq while it holds s, through the Gate.
func (e *EventCount) sleep(ctx context.Context, s uint32, deadline time.Time) error {
	if err := e.gate.Enter(ctx, e.closing); err != nil {
		if err == ErrClosed {
			return e.closedErr
		}
		return err
	}
	defer e.gate.Leave()
	if e.closed.Load() {
		return e.closedErr
	}
	if e.seq.Load() != s {
		return nil // moved while we queued: look again
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	var stop func() bool
	var fired chan struct{}
	if ctx.Done() != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			e.interrupt()
			close(fired)
		})
	}
	e.sleeps.Add(1)
	err := wait(e.seq, s, deadline, e.bit)
	if stop != nil && !stop() {
		// The callback ran or runs: wait for it, so that the caller may
		// unmap the word as soon as we return.
		<-fired
	}
	switch {
	case e.closed.Load():
		return e.closedErr
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, ErrTimeout):
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded // ctx.Err has not caught up with the clock yet
		}
	}
	return err
}

// now returns monotonic nanoseconds for the reclaim timer.
func now() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()

func (e *EventCount) maybeReclaim() {
	t := now()
	next := e.nextScan.Load()
	if t < next || !e.nextScan.CompareAndSwap(next, t+int64(ReclaimInterval)) {
		return
	}
	e.Reclaim()
}

// Reclaim clears the announcements of participants the kernel proves dead
// (see the protocol) and reports how many it cleared. Wakers call it when
// a wakeup finds nobody asleep.
func (e *EventCount) Reclaim() int {
	cleared := 0
	for w := range e.mask {
		m := e.mask[w].Load()
		for m != 0 {
			b := bits.TrailingZeros64(m)
			m &^= 1 << b
			if e.reclaimSlot(w, b) {
				cleared++
			}
		}
	}
	e.reclaimed.Add(uint64(cleared))
	return cleared
}

// reclaimSlot clears bit b of mask word w unless a live participant set it.
func (e *EventCount) reclaimSlot(w, b int) bool {
	i := w*64 + b
	if i < len(e.entries) {
		if t := e.entries[i].Load(); t != 0 {
			if e.host.Alive(t) {
				return false
			}
			// Invariant: only the announcer, or a reclaimer that proved it
			// dead, clears an entry; the CAS fails if a new announcer of
			// the slot took it meanwhile.
			if !e.entries[i].CompareAndSwap(t, 0) {
				return false
			}
		}
		// No entry: the announcer was withdrawing (or died doing so).
	}
	bit := uint64(1) << b
	e.mask[w].And(^bit)
	if i < len(e.entries) && e.entries[i].Load() != 0 {
		// A live participant of slot i announced since we looked, and our
		// clear may have erased its bit: restore it, and wake everyone in
		// case a waker missed it meanwhile (see the protocol).
		e.mask[w].Or(bit)
		e.seq.Add(1)
		e.wakes.Add(1)
		Wake(e.seq, All)
		return false
	}
	return true
}
