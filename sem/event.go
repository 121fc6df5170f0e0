package sem

// Event protocol.
//
// Words: state @0 (the futex word: seq<<1 | set), waiters @4.
// Set: if the set bit is clear, CAS it on and bump seq in the same word;
// then FUTEX_WAKE(all) if waiters > 0. Clear: CAS the set bit off.
// Wait: remember the word w0; return if set; else waiters+1 and sleep with
// FUTEX_WAIT(state, w) until the set bit is on or seq differs from w0's,
// then waiters-1. Comparing seq means a Set followed at once by Clear still
// releases everyone who was waiting (Python's Event behaves so too).
//
// No lost wakeup, by the same argument as Semaphore: if Set's load of
// waiters missed a waiter, that waiter announced itself after the CAS and
// its check (or its FUTEX_WAIT on the old word) sees the new word. Within a
// process the kernel sleeper, once woken, leaves the gate and the goroutines
// behind it see the new word without sleeping.

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	evState   = 0
	evWaiters = 4
	evSize    = 64
	evSet     = 1
)

var zeroTime time.Time

// Event is a flag processes can wait on: Python's multiprocessing.Event.
type Event struct {
	seg     *shm.Segment
	state   *atomic.Uint32
	waiters *atomic.Uint32
	gate    *futex.Gate
}

// NewEvent creates a clear Event called name.
func NewEvent(seg *shm.Segment, name string) (*Event, error) {
	_, mem, err := seg.Alloc(name, shm.KindEvent, 0, evSize, nil)
	if err != nil {
		return nil, err
	}
	return newEvent(seg, mem), nil
}

// LookupEvent finds the Event called name.
func LookupEvent(seg *shm.Segment, name string) (*Event, error) {
	_, mem, err := seg.Lookup(name, shm.KindEvent, 0)
	if err != nil {
		return nil, err
	}
	return newEvent(seg, mem), nil
}

func newEvent(seg *shm.Segment, mem []byte) *Event {
	return &Event{seg: seg, state: word(mem, evState), waiters: word(mem, evWaiters), gate: futex.NewGate()}
}

// Set sets the flag and wakes every waiter in every process.
func (e *Event) Set() {
	for {
		v := e.state.Load()
		if v&evSet != 0 {
			return
		}
		// Invariant: each transition to set bumps seq, so a waiter that
		// saw the old word knows a Set happened even if a Clear follows.
		if e.state.CompareAndSwap(v, (v+2)|evSet) {
			break
		}
	}
	if e.waiters.Load() > 0 {
		futex.Wake(e.state, futex.All)
	}
}

// Clear resets the flag.
func (e *Event) Clear() {
	for {
		v := e.state.Load()
		if v&evSet == 0 || e.state.CompareAndSwap(v, v&^evSet) {
			return
		}
	}
}

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool { return e.state.Load()&evSet != 0 }

// Wait blocks until the flag is set (or was set since Wait began), or ctx
// ends (ctx.Err()).
func (e *Event) Wait(ctx context.Context) error {
	w0 := e.state.Load()
	if w0&evSet != 0 {
		return nil
	}
	return e.waitSlow(ctx, w0)
}

func (e *Event) waitSlow(ctx context.Context, w0 uint32) error {
	if err := e.seg.Pin(); err != nil {
		return err
	}
	defer e.seg.Unpin()
	e.waiters.Add(1)
	defer e.waiters.Add(math.MaxUint32)
	for {
		w := e.state.Load()
		if w&evSet != 0 || w>>1 != w0>>1 {
			return nil
		}
		if err := sleep(ctx, e.seg, e.gate, e.state, w, zeroTime); err != nil && !errors.Is(err, futex.ErrTimeout) {
			return err
		}
	}
}
