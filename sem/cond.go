package sem

// Cond protocol (a sequence futex).
//
// Words: seq @0 (futex word, bumped by every Signal/Broadcast), waiters @4.
// Wait(mu): read seq into s and announce (waiters+1) while still holding
// mu, unlock mu, FUTEX_WAIT(seq, s), waiters-1, lock mu again.
// Signal: seq+1; FUTEX_WAKE(1) if waiters > 0. Broadcast: seq+1; wake all.
//
// No lost signal: a signal that follows the waiter's unlock of mu changes
// seq after the waiter read s, so the waiter's FUTEX_WAIT(seq, s) either
// fails with EAGAIN or is asleep when the wake comes. A signaller that holds
// mu sees the waiter's announcement, made before mu was released. As with
// every condition variable, a waiter may wake without a signal meant for it
// (another process's signal, the at-most-one-sleeper gate): check the
// predicate in a loop.

import (
	"context"
	"errors"
	"math"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	condSeq     = 0
	condWaiters = 4
	condSize    = 64
)

// Cond is a condition variable shared by processes, used with a Mutex:
// Python's multiprocessing.Condition.
type Cond struct {
	seg     *shm.Segment
	seq     *atomic.Uint32
	waiters *atomic.Uint32
	gate    *futex.Gate
}

// NewCond creates a Cond called name.
func NewCond(seg *shm.Segment, name string) (*Cond, error) {
	_, mem, err := seg.Alloc(name, shm.KindCond, 0, condSize, nil)
	if err != nil {
		return nil, err
	}
	return newCond(seg, mem), nil
}

// LookupCond finds the Cond called name.
func LookupCond(seg *shm.Segment, name string) (*Cond, error) {
	_, mem, err := seg.Lookup(name, shm.KindCond, 0)
	if err != nil {
		return nil, err
	}
	return newCond(seg, mem), nil
}

func newCond(seg *shm.Segment, mem []byte) *Cond {
	return &Cond{seg: seg, seq: word(mem, condSeq), waiters: word(mem, condWaiters), gate: futex.NewGate()}
}

// Wait unlocks mu, which the caller holds, sleeps until a Signal or
// Broadcast (or spuriously), and locks mu again before returning, even when
// ctx ends (then the error matches ctx.Err()). If mu's holder died while
// Wait was relocking, the error matches ErrOwnerDead and mu is held.
func (c *Cond) Wait(ctx context.Context, mu *Mutex) error {
	if err := c.seg.Pin(); err != nil {
		return err
	}
	defer c.seg.Unpin()
	s := c.seq.Load()
	c.waiters.Add(1)
	if err := mu.Unlock(); err != nil {
		c.waiters.Add(math.MaxUint32)
		return err
	}
	err := sleep(ctx, c.seg, c.gate, c.seq, s, zeroTime)
	c.waiters.Add(math.MaxUint32)
	if err != nil && c.seq.Load() != s && c.waiters.Load() > 0 {
		// We may have swallowed a Signal meant for a waiter; pass it on.
		futex.Wake(c.seq, 1)
	}
	if errors.Is(err, futex.ErrTimeout) {
		err = nil
	}
	// Relock whatever happened: the caller's deferred Unlock expects it.
	lerr := mu.Lock(context.WithoutCancel(ctx))
	return errors.Join(err, lerr)
}

// Signal wakes one waiter, if any announced itself.
func (c *Cond) Signal() {
	c.seq.Add(1)
	if c.waiters.Load() > 0 {
		futex.Wake(c.seq, 1)
	}
}

// Broadcast wakes every waiter.
func (c *Cond) Broadcast() {
	c.seq.Add(1)
	if c.waiters.Load() > 0 {
		futex.Wake(c.seq, futex.All)
	}
}
