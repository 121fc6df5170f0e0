package sem

// Barrier protocol.
//
// Object: lock @0 (a robust mutex word, internal/robust) guarding count and
// the arrival table; gen @4 (generation<<1 | broken); count @8 (parties
// arrived in this generation); outcome @12 (bit g%32 set when generation g
// was broken); then the lock's event count, gen's event count, and the
// arrival table (participant token of each arrival, so sleepers can prove
// a party dead). Parties sit in the object table's aux word, immutable.
//
// Arrive: under the lock, record the token and count+1. The last arrival
// resets count, clears the next generation's outcome bit, stores gen+1
// (unbroken) and notifies everyone. Others wait on gen's event count for
// gen to differ from the w they saw under the lock: any release or break
// changes gen after that and then notifies, so the wait cannot miss it
// (the event count's argument, internal/futex).
//
// Breaking (a timeout, Abort, Reset with waiters, a party proven dead, a
// party dying inside the lock): set the generation's outcome bit, then the
// broken bit of gen, and notify all. A sleeper that finds gen moved on
// reads its own generation's outcome bit, which was written before gen
// changed and is cleared only when generation+32 starts.
//
// Sleepers wake every CheckInterval to ask the kernel whether the arrived
// parties are alive; one that died breaks the barrier. A party that dies
// before arriving cannot be told from one that is late: give Wait a deadline.

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/robust"
	"github.com/shmkit/shmkit/shm"
)

const (
	barLock    = 0
	barGen     = 4
	barCount   = 8
	barOutcome = 12
	barFixed   = 16

	// MaxParties bounds a Barrier's size.
	MaxParties = 1 << 16
)

// barLayout returns the object size and the offsets of its event counts
// (0: the lock's, 1: gen's) and of its arrival table.
func barLayout(seg *shm.Segment, parties int) (size int, ecOff func(int) int, tokens int) {
	size, ecOff = objLayout(seg, barFixed, 2, 4*parties)
	return size, ecOff, ecOff(2)
}

// Barrier makes a fixed number of parties wait for each other: Python's
// multiprocessing.Barrier.
type Barrier struct {
	seg     *shm.Segment
	mu      *robust.Mutex
	gen     *atomic.Uint32
	genEC   *futex.EventCount // waiters for gen to move
	sp      futex.Spinner
	count   *atomic.Uint32
	outcome *atomic.Uint32
	tokens  []atomic.Uint32
}

// NewBarrier creates a Barrier called name for parties parties.
func NewBarrier(seg *shm.Segment, name string, parties int) (*Barrier, error) {
	if parties <= 0 || parties > MaxParties {
		return nil, ErrInvalid
	}
	size, _, _ := barLayout(seg, parties)
	_, mem, err := seg.Alloc(name, shm.KindBarrier, uint32(parties), size, nil)
	if err != nil {
		return nil, err
	}
	return newBarrier(seg, mem, parties)
}

// LookupBarrier finds the Barrier called name.
func LookupBarrier(seg *shm.Segment, name string) (*Barrier, error) {
	o, mem, err := seg.Lookup(name, shm.KindBarrier, shm.AnyAux)
	if err != nil {
		return nil, err
	}
	parties := int(o.Aux)
	if parties <= 0 || parties > MaxParties {
		return nil, ErrInvalid
	}
	if size, _, _ := barLayout(seg, parties); len(mem) < size {
		return nil, ErrInvalid
	}
	return newBarrier(seg, mem, parties)
}

func newBarrier(seg *shm.Segment, mem []byte, parties int) (*Barrier, error) {
	_, ecOff, tokens := barLayout(seg, parties)
	mu, err := newRobust(seg, mem, ecOff(0))
	if err != nil {
		return nil, err
	}
	genEC, err := eventCount(seg, mem, ecOff(1))
	if err != nil {
		return nil, err
	}
	return &Barrier{
		seg:     seg,
		mu:      mu,
		gen:     word(mem, barGen),
		genEC:   genEC,
		count:   word(mem, barCount),
		outcome: word(mem, barOutcome),
		tokens:  unsafeWords(mem[tokens:], parties),
	}, nil
}

// Parties returns the number of parties.
func (b *Barrier) Parties() int { return len(b.tokens) }

// NWaiting returns how many parties are waiting now.
func (b *Barrier) NWaiting() int { return int(b.count.Load()) }

// Broken reports whether the barrier is broken (until Reset).
func (b *Barrier) Broken() bool { return b.gen.Load()&1 != 0 }

// lock takes the internal lock; a party that died inside it leaves the
// counters suspect, so the barrier is broken and the lock repaired.
func (b *Barrier) lock(ctx context.Context) error {
	err := b.mu.Lock(ctx)
	if errors.Is(err, ErrOwnerDead) {
		b.breakLocked(b.gen.Load())
		b.mu.MarkConsistent()
		return nil
	}
	return err
}

// breakLocked breaks the generation of w. Caller holds the lock.
func (b *Barrier) breakLocked(w uint32) {
	if b.gen.Load() != w || w&1 != 0 {
		return
	}
	b.outcome.Or(1 << ((w >> 1) % 32))
	b.gen.Store(w | 1)
	b.genEC.Notify(futex.All)
}

// Wait waits until all parties have called Wait, and returns this party's
// arrival index (0 for the first, Parties()-1 for the last). If the barrier
// is or becomes broken the error matches ErrBroken; if ctx ends first the
// barrier is broken for everyone and the error matches both ErrBroken and
// ctx.Err(), as in Python.
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	if err := b.seg.Pin(); err != nil {
		return -1, err
	}
	defer b.seg.Unpin()
	if err := b.lock(ctx); err != nil {
		return -1, err
	}
	w := b.gen.Load()
	n := b.count.Load()
	if w&1 != 0 {
		b.mu.Unlock()
		return -1, ErrBroken
	}
	if int(n) >= len(b.tokens) {
		b.breakLocked(w)
		b.mu.Unlock()
		return -1, errors.Join(ErrBroken, ErrInvalid)
	}
	b.tokens[n].Store(uint32(b.seg.Self()))
	if int(n)+1 == len(b.tokens) {
		next := w>>1 + 1
		b.count.Store(0)
		b.outcome.And(^uint32(1 << (next % 32)))
		b.gen.Store(next << 1)
		b.mu.Unlock()
		b.genEC.Notify(futex.All)
		return int(n), nil
	}
	b.count.Store(n + 1)
	b.mu.Unlock()

	nextCheck := time.Now().Add(robust.CheckInterval)
	for {
		err := b.genEC.Wait(ctx, nextCheck, &b.sp, func() bool { return b.gen.Load() != w })
		if cur := b.gen.Load(); cur != w {
			if cur>>1 == w>>1 || b.outcome.Load()&(1<<((w>>1)%32)) != 0 {
				return int(n), ErrBroken
			}
			return int(n), nil
		}
		switch {
		case errors.Is(err, futex.ErrTimeout) || !time.Now().Before(nextCheck):
			b.checkParties(w)
			nextCheck = time.Now().Add(robust.CheckInterval)
		case err != nil:
			if lerr := b.lock(context.WithoutCancel(ctx)); lerr == nil {
				b.breakLocked(w)
				b.mu.Unlock()
			}
			return int(n), errors.Join(ErrBroken, err)
		}
	}
}

// checkParties breaks generation w if an arrived party is dead.
func (b *Barrier) checkParties(w uint32) {
	switch err := b.mu.TryLock(); {
	case errors.Is(err, ErrOwnerDead):
		// A party died inside the lock: the counters are suspect.
		b.breakLocked(b.gen.Load())
		b.mu.MarkConsistent()
	case err != nil:
		return // someone is arriving; check on the next round
	}
	if b.gen.Load() == w {
		n := min(int(b.count.Load()), len(b.tokens))
		for i := 0; i < n; i++ {
			if !b.seg.Alive(shm.Token(b.tokens[i].Load())) {
				b.breakLocked(w)
				break
			}
		}
	}
	b.mu.Unlock()
}

// Abort breaks the barrier: current and future waiters get ErrBroken until
// Reset.
func (b *Barrier) Abort(ctx context.Context) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	b.breakLocked(b.gen.Load())
	return b.mu.Unlock()
}

// Reset returns the barrier to its empty, unbroken state; parties waiting
// now get ErrBroken.
func (b *Barrier) Reset(ctx context.Context) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	w := b.gen.Load()
	if w&1 == 0 && b.count.Load() > 0 {
		b.outcome.Or(1 << ((w >> 1) % 32))
	}
	next := w>>1 + 1
	b.count.Store(0)
	b.outcome.And(^uint32(1 << (next % 32)))
	b.gen.Store(next << 1)
	b.genEC.Notify(futex.All)
	return b.mu.Unlock()
}
