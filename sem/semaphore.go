package sem

// Semaphore protocol.
//
// Object: count @0 (permits available), then an event count. The bound
// lives in the object table's aux word, immutable after creation, and is
// read once at Lookup.
//
// Acquire: CAS count c → c-1 while c > 0 (fast path, no syscall).
// Otherwise wait on the event count until count > 0, and try again.
// Release: CAS count c → c+1, then notify one waiter (a syscall only if one
// is announced). That is the event count's protocol with the CAS as the
// change, so its no-lost-wakeup argument applies; a waiter whose context
// ends passes on a wakeup it may have consumed, and one that died asleep is
// reclaimed (internal/futex).

import (
	"context"
	"math"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	semCount = 0
	semFixed = 8
)

// Semaphore is a counting semaphore shared by processes, optionally
// bounded (Python's BoundedSemaphore): Release beyond the bound fails.
type Semaphore struct {
	seg   *shm.Segment
	count *atomic.Uint32
	ec    *futex.EventCount
	sp    futex.Spinner
	bound uint32 // 0: unbounded
}

// NewSemaphore creates a Semaphore called name holding initial permits.
// A bound > 0 caps the count: Release past it returns ErrOverflow.
func NewSemaphore(seg *shm.Segment, name string, initial, bound uint32) (*Semaphore, error) {
	if bound > 0 && initial > bound {
		return nil, ErrInvalid
	}
	size, _ := objLayout(seg, semFixed, 1, 0)
	_, mem, err := seg.Alloc(name, shm.KindSemaphore, bound, size, func(mem []byte) error {
		word(mem, semCount).Store(initial)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return newSemaphore(seg, mem, bound)
}

// LookupSemaphore finds the Semaphore called name.
func LookupSemaphore(seg *shm.Segment, name string) (*Semaphore, error) {
	o, mem, err := seg.Lookup(name, shm.KindSemaphore, shm.AnyAux)
	if err != nil {
		return nil, err
	}
	return newSemaphore(seg, mem, o.Aux)
}

func newSemaphore(seg *shm.Segment, mem []byte, bound uint32) (*Semaphore, error) {
	_, ecOff := objLayout(seg, semFixed, 1, 0)
	ec, err := eventCount(seg, mem, ecOff(0))
	if err != nil {
		return nil, err
	}
	return &Semaphore{seg: seg, count: word(mem, semCount), ec: ec, bound: bound}, nil
}

// TryAcquire takes a permit if one is available.
func (s *Semaphore) TryAcquire() bool {
	for {
		c := s.count.Load()
		if c == 0 {
			return false
		}
		// Invariant: the count never goes below zero; each permit is taken
		// by exactly one successful CAS.
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
	for !s.TryAcquire() {
		if err := s.ec.Wait(ctx, zeroTime, &s.sp, func() bool { return s.count.Load() > 0 }); err != nil {
			return err
		}
	}
	return nil
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
	s.ec.Notify(1)
	return nil
}

// Value returns the number of permits available now.
func (s *Semaphore) Value() int { return int(s.count.Load()) }

// Bound returns the bound, or 0 if unbounded.
func (s *Semaphore) Bound() int { return int(s.bound) }
