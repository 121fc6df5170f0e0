package sem

// Event protocol.
//
// Object: state @0 (seq<<1 | set), then an event count.
// Set: if the set bit is clear, CAS it on and bump seq in the same word;
// then notify every waiter. Clear: CAS the set bit off.
// Wait: remember the word w0; return if set; else wait on the event count
// until the set bit is on or seq differs from w0's. Comparing seq means a
// Set followed at once by Clear still releases everyone who was waiting
// (Python's Event behaves so too). The no-lost-wakeup argument is the event
// count's (internal/futex), with Set's CAS as the change.

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	evState = 0
	evFixed = 8
	evSet   = 1
)

var zeroTime time.Time

// Event is a flag processes can wait on: Python's multiprocessing.Event.
type Event struct {
	seg   *shm.Segment
	state *atomic.Uint32
	ec    *futex.EventCount
	sp    futex.Spinner
}

// NewEvent creates a clear Event called name.
func NewEvent(seg *shm.Segment, name string) (*Event, error) {
	size, _ := objLayout(seg, evFixed, 1, 0)
	_, mem, err := seg.Alloc(name, shm.KindEvent, 0, size, nil)
	if err != nil {
		return nil, err
	}
	return newEvent(seg, mem)
}

// LookupEvent finds the Event called name.
func LookupEvent(seg *shm.Segment, name string) (*Event, error) {
	_, mem, err := seg.Lookup(name, shm.KindEvent, 0)
	if err != nil {
		return nil, err
	}
	return newEvent(seg, mem)
}

func newEvent(seg *shm.Segment, mem []byte) (*Event, error) {
	_, ecOff := objLayout(seg, evFixed, 1, 0)
	ec, err := eventCount(seg, mem, ecOff(0))
	if err != nil {
		return nil, err
	}
	return &Event{seg: seg, state: word(mem, evState), ec: ec}, nil
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
	e.ec.Notify(futex.All)
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
	return e.ec.Wait(ctx, zeroTime, &e.sp, func() bool {
		w := e.state.Load()
		return w&evSet != 0 || w>>1 != w0>>1
	})
}
