package futex

import "context"

// Gate admits one goroutine of this process at a time to sleep in the
// kernel on one shared object. A goroutine in FUTEX_WAIT holds an OS thread;
// without the gate, N goroutines waiting on one lock would hold N threads.
// The others park in the Go scheduler behind the gate and re-check the shared
// state when they get through, so a wakeup meant for them is never lost: the
// kernel sleeper, once woken, leaves the gate and the next goroutine sees the
// state that the wakeup announced.
type Gate struct{ ch chan struct{} }

// NewGate returns an open gate.
func NewGate() *Gate { return &Gate{ch: make(chan struct{}, 1)} }

// Enter waits for the gate or for ctx to end.
func (g *Gate) Enter(ctx context.Context) error {
	select {
	case g.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case g.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave lets the next goroutine in.
func (g *Gate) Leave() { <-g.ch }
