package futex

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Gate is a mutual-exclusion lock among the goroutines of one process
// whose Enter honours a context: a goroutine queued behind another that
// sleeps (in the kernel, or waiting for a peer process) leaves the queue
// when its context ends, as x/sync's semaphore does. Uncontended, Enter and
// Leave are one CAS each, like sync.Mutex.
//
// It serves two purposes: one kernel sleeper per process and EventCount
// (see EventCount), and exclusive access to one side of a queue handle.
// The gate is not fair to goroutines that arrive while it is being handed
// over, but it is FIFO among the queued ones: Leave hands the gate to the
// oldest waiter directly.
type Gate struct {
	state atomic.Uint32 // gateHeld | gateQueued
	mu    sync.Mutex    // guards queue, and state changes while gateQueued is set
	queue []chan struct{}
}

const (
	gateHeld   = 1
	gateQueued = 2 // queue is non-empty: Leave must hand over
)

// TryEnter takes the gate if it is free.
func (g *Gate) TryEnter() bool { return g.state.CompareAndSwap(0, gateHeld) }

// Enter takes the gate, waiting until it is free, ctx ends (ctx.Err()) or
// abort is closed (ErrClosed). A nil abort never closes.
func (g *Gate) Enter(ctx context.Context, abort <-chan struct{}) error {
	if g.state.CompareAndSwap(0, gateHeld) {
		return nil
	}
	return g.enterSlow(ctx, abort)
}

var waiterChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

func (g *Gate) enterSlow(ctx context.Context, abort <-chan struct{}) error {
	g.mu.Lock()
	for {
		s := g.state.Load()
		if s&gateHeld == 0 {
			if g.state.CompareAndSwap(s, s|gateHeld) {
				g.mu.Unlock()
				return nil
			}
			continue
		}
		// Invariant: gateQueued is set, under mu, before a waiter is queued,
		// so the holder's fast Leave fails and it hands over under mu.
		if s&gateQueued != 0 || g.state.CompareAndSwap(s, s|gateQueued) {
			break
		}
	}
	select {
	case <-abort:
		g.dequeueLocked(nil)
		g.mu.Unlock()
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		g.dequeueLocked(nil)
		g.mu.Unlock()
		return err
	}
	w := waiterChans.Get().(chan struct{})
	g.queue = append(g.queue, w)
	g.mu.Unlock()
	var err error
	select {
	case <-w:
		waiterChans.Put(w)
		return nil // handed over: we hold the gate
	case <-ctx.Done():
		err = ctx.Err()
	case <-abort:
		err = ErrClosed
	}
	g.mu.Lock()
	if g.dequeueLocked(w) {
		g.mu.Unlock()
		waiterChans.Put(w)
		return err
	}
	g.mu.Unlock()
	// Leave handed us the gate as we gave up: take it, and pass it on.
	<-w
	waiterChans.Put(w)
	g.Leave()
	return err
}

// dequeueLocked removes w (if queued) and clears gateQueued when the queue
// runs empty. It reports whether w was queued.
func (g *Gate) dequeueLocked(w chan struct{}) bool {
	i := slices.Index(g.queue, w)
	if w != nil && i < 0 {
		return false
	}
	if i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
	if len(g.queue) == 0 {
		g.state.And(^uint32(gateQueued))
	}
	return true
}

// Leave releases the gate, handing it to the oldest queued goroutine.
func (g *Gate) Leave() {
	if g.state.CompareAndSwap(gateHeld, 0) {
		return
	}
	g.leaveSlow()
}

func (g *Gate) leaveSlow() {
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.state.Store(0)
		g.mu.Unlock()
		return
	}
	w := g.queue[0]
	g.queue = slices.Delete(g.queue, 0, 1)
	if len(g.queue) == 0 {
		g.state.Store(gateHeld) // still held, by w now; nobody queued
	}
	g.mu.Unlock()
	w <- struct{}{}
}
