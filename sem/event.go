package sem

// Event protocol.
//
// Words: state @0 (futex word: 0 clear, 1 set), waiters @4.
// Set: Swap(state, 1); if it was clear and waiters > 0, FUTEX_WAKE(all).
// Wait: return if state is 1; else waiters+1, FUTEX_WAIT(state, 0) until
// state is 1, waiters-1.
//
// No lost wakeup, by the same argument as Semaphore: if Set's load of
// waiters missed a waiter, that waiter announced itself after the Swap and
// its FUTEX_WAIT(state, 0) fails with EAGAIN. Within a process the kernel
// sleeper, once woken, leaves the gate and the goroutines behind it find
// the state set without sleeping.

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
)

var zeroTime time.Time

// Event is a flag processes can wait on: Python's multiprocessing.Event.
type Event struct {
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
	return newEvent(mem), nil
}

// LookupEvent finds the Event called name.
func LookupEvent(seg *shm.Segment, name string) (*Event, error) {
	_, mem, err := seg.Lookup(name, shm.KindEvent, 0)
	if err != nil {
		return nil, err
	}
	return newEvent(mem), nil
}

func newEvent(mem []byte) *Event {
	return &Event{state: word(mem, evState), waiters: word(mem, evWaiters), gate: futex.NewGate()}
}

// Set sets the flag and wakes every waiter in every process.
func (e *Event) Set() {
	if e.state.Swap(1) == 0 && e.waiters.Load() > 0 {
		futex.Wake(e.state, futex.All)
	}
}

// Clear resets the flag.
func (e *Event) Clear() { e.state.Store(0) }

// IsSet reports whether the flag is set.
func (e *Event) IsSet() bool { return e.state.Load() != 0 }

// Wait blocks until the flag is set or ctx ends (ctx.Err()).
func (e *Event) Wait(ctx context.Context) error {
	if e.state.Load() != 0 {
		return nil
	}
	return e.waitSlow(ctx)
}

func (e *Event) waitSlow(ctx context.Context) error {
	e.waiters.Add(1)
	defer e.waiters.Add(math.MaxUint32)
	for e.state.Load() == 0 {
		if err := sleep(ctx, e.gate, e.state, 0, zeroTime); err != nil && !errors.Is(err, futex.ErrTimeout) {
			return err
		}
	}
	return nil
}
