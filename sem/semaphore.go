package sem

// Semaphore protocol.
//
// Words (64-byte object): count @0 (the futex word: permits available),
// waiters @4 (processes' goroutines that announced they may sleep). The
// bound lives in the object table's aux word, immutable after creation,
// and is read once at Lookup.
//
// Acquire: CAS count c → c-1 while c > 0 (fast path, no syscall). Otherwise
// waiters+1, re-read count, FUTEX_WAIT(count, 0), waiters-1, retry.
// Release: CAS count c → c+1, then FUTEX_WAKE(1) only if waiters > 0.
//
// No lost wakeup: all these atomics are sequentially consistent. If
// Release's load of waiters saw 0, the waiter's increment comes later in
// that order, so its FUTEX_WAIT(count, 0) comes after the count increment
// and the kernel returns EAGAIN instead of sleeping. If it saw the waiter,
// the wake reaches it (or it had not slept yet, and EAGAIN again). A waiter
// that gives up (ctx) after a wake may have swallowed it, so it passes the
// wake on when permits remain.
//
// A process that dies while counted in waiters leaves the count high: the
// cost is a needless FUTEX_WAKE per Release, never a lost wakeup.

import (
	"context"
	"errors"
	"math"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	semCount   = 0
	semWaiters = 4
	semSize    = 64
)

// Semaphore is a counting semaphore shared by processes, optionally
// bounded (Python's BoundedSemaphore): Release beyond the bound fails.
type Semaphore struct {
	seg     *shm.Segment
	count   *atomic.Uint32
	waiters *atomic.Uint32
	bound   uint32 // 0: unbounded
	gate    *futex.Gate
}

// NewSemaphore creates a Semaphore called name holding initial permits.
// A bound > 0 caps the count: Release past it returns ErrOverflow.
func NewSemaphore(seg *shm.Segment, name string, initial, bound uint32) (*Semaphore, error) {
	if bound > 0 && initial > bound {
		return nil, ErrInvalid
	}
	_, mem, err := seg.Alloc(name, shm.KindSemaphore, bound, semSize, func(mem []byte) error {
		word(mem, semCount).Store(initial)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newSemaphore(seg, mem, bound), nil
}

// LookupSemaphore finds the Semaphore called name.
func LookupSemaphore(seg *shm.Segment, name string) (*Semaphore, error) {
	o, mem, err := seg.Lookup(name, shm.KindSemaphore, shm.AnyAux)
	if err != nil {
		return nil, err
	}
	return newSemaphore(seg, mem, o.Aux), nil
}

func newSemaphore(seg *shm.Segment, mem []byte, bound uint32) *Semaphore {
	return &Semaphore{seg: seg, count: word(mem, semCount), waiters: word(mem, semWaiters), bound: bound, gate: futex.NewGate()}
}

// TryAcquire takes a permit if one is available.
func (s *Semaphore) TryAcquire() bool {
	for {
		c := s.count.Load()
		if c == 0 {
			return false
		}
		if s.count.CompareAndSwap(c, c-1) {
			return true
		}
	}
}

// Acquire takes a permit, waiting until one is released or ctx ends. On
// ctx's end it returns ctx.Err() and the count is unchanged.
func (s *Semaphore) Acquire(ctx context.Context) error {
	if s.TryAcquire() {
		return nil
	}
	return s.acquireSlow(ctx)
}

func (s *Semaphore) acquireSlow(ctx context.Context) error {
	if err := s.seg.Pin(); err != nil {
		return err
	}
	defer s.seg.Unpin()
	for {
		if s.TryAcquire() {
			return nil
		}
		s.waiters.Add(1)
		var err error
		if s.count.Load() == 0 {
			err = sleep(ctx, s.seg, s.gate, s.count, 0, zeroTime)
		}
		s.waiters.Add(math.MaxUint32) // -1
		if err != nil && !errors.Is(err, futex.ErrTimeout) {
			if s.count.Load() > 0 && s.waiters.Load() > 0 {
				futex.Wake(s.count, 1)
			}
			return err
		}
	}
}

// Release returns a permit and wakes one sleeper if any announced itself.
func (s *Semaphore) Release() error {
	for {
		c := s.count.Load()
		if (s.bound > 0 && c >= s.bound) || c == math.MaxUint32 {
			return ErrOverflow
		}
		if s.count.CompareAndSwap(c, c+1) {
			break
		}
	}
	if s.waiters.Load() > 0 {
		futex.Wake(s.count, 1)
	}
	return nil
}

// Value returns the number of permits available now.
func (s *Semaphore) Value() int { return int(s.count.Load()) }

// Bound returns the bound, or 0 if unbounded.
func (s *Semaphore) Bound() int { return int(s.bound) }
