package sem

// Cond protocol.
//
// Object: an event count. Wait(mu): announce on the event count and read
// its sequence s while still holding mu (Prepare), unlock mu, sleep until
// the sequence moves from s (Sleep), withdraw, lock mu again.
// Signal: notify one waiter; Broadcast: notify all.
//
// No lost signal: the waiter announced itself before it released mu, so a
// Signal that follows the unlock sees the announcement and moves the
// sequence after the waiter read s; its sleep then fails at once or is
// woken (the event count's argument, internal/futex). As with every
// condition variable a waiter may wake without a signal meant for it
// (another process's signal, or one that woke another goroutine of this
// process): check the predicate in a loop.

import (
	"context"
	"errors"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// Cond is a condition variable shared by processes, used with a Mutex:
// Python's multiprocessing.Condition.
type Cond struct {
	seg *shm.Segment
	ec  *futex.EventCount
}

// NewCond creates a Cond called name.
func NewCond(seg *shm.Segment, name string) (*Cond, error) {
	size, _ := objLayout(seg, 0, 1, 0)
	_, mem, err := seg.Alloc(name, shm.KindCond, 0, size, nil)
	if err != nil {
		return nil, err
	}
	return newCond(seg, mem)
}

// LookupCond finds the Cond called name.
func LookupCond(seg *shm.Segment, name string) (*Cond, error) {
	_, mem, err := seg.Lookup(name, shm.KindCond, 0)
	if err != nil {
		return nil, err
	}
	return newCond(seg, mem)
}

func newCond(seg *shm.Segment, mem []byte) (*Cond, error) {
	ec, err := eventCount(seg, mem, 0)
	if err != nil {
		return nil, err
	}
	return &Cond{seg: seg, ec: ec}, nil
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
	s := c.ec.Prepare()
	if err := mu.Unlock(); err != nil {
		c.ec.Done()
		return err
	}
	err := c.ec.Sleep(ctx, s, zeroTime)
	c.ec.Done()
	if errors.Is(err, futex.ErrTimeout) {
		err = nil
	}
	// Relock whatever happened: the caller's deferred Unlock expects it.
	lerr := mu.Lock(context.WithoutCancel(ctx))
	if err == nil {
		return lerr
	}
	if lerr == nil {
		return err
	}
	return errors.Join(err, lerr)
}

// Signal wakes one waiter, if any announced itself.
func (c *Cond) Signal() { c.ec.Notify(1) }

// Broadcast wakes every waiter.
func (c *Cond) Broadcast() { c.ec.Notify(futex.All) }
