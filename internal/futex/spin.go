package futex

import (
	"runtime"
	"sync/atomic"
	"time"
)

// DefaultSpin is the spin bound a Spinner uses when given 0.
const DefaultSpin = 50 * time.Microsecond

// minSpin is the budget's floor: below it spinning stops mattering.
const minSpin = time.Microsecond

// Spinner is the one spin policy of every blocking call: re-check the
// condition for a while before sleeping in the kernel. A sleep costs a
// FUTEX_WAIT and, worse, the wakeup of an idle CPU (tens of µs on a VM);
// spinning costs a CPU. The budget adapts to the waits it sees: a wait that
// spun and slept but ended within twice the bound means a spin of the full
// bound would (nearly) have caught it, so the budget doubles, up to the
// bound; a longer wait means the peer was idle, so it halves, down to 1 µs.
// The test is against the bound, not the budget: a wait's length includes
// the sleep and wakeup themselves (several µs on a VM), so a test against a
// small budget would keep it small for ever once it got there.
//
// Spinning is skipped when the awaited step cannot happen meanwhile
// (GOMAXPROCS or the CPUs available is 1), and the spinner gives its CPU
// away every 256 checks: a peer that shares the CPU must get to run.
//
// In poll mode a waiter never sleeps in the kernel: lowest latency, one CPU
// kept busy. A Spinner is safe for concurrent use; its zero value spins up
// to DefaultSpin.
type Spinner struct {
	max    atomic.Int64 // bound in ns: 0 means DefaultSpin, < 0 never spin
	budget atomic.Int64 // current budget in ns; 0 until first used
	poll   atomic.Bool
}

// NewSpinner returns a spinner bounded by bound (0: DefaultSpin; negative:
// never spin).
func NewSpinner(bound time.Duration) *Spinner {
	s := new(Spinner)
	s.SetMax(bound)
	return s
}

// SetMax changes the bound (see NewSpinner) and restarts the adaptation.
func (s *Spinner) SetMax(bound time.Duration) {
	s.max.Store(int64(bound))
	s.budget.Store(0)
}

// SetPoll turns poll mode on or off.
func (s *Spinner) SetPoll(on bool) { s.poll.Store(on) }

// Polling reports whether poll mode is on.
func (s *Spinner) Polling() bool { return s != nil && s.poll.Load() }

// Bound returns the spin bound in use (DefaultSpin for 0).
func (s *Spinner) Bound() time.Duration {
	if m := time.Duration(s.max.Load()); m != 0 {
		return m
	}
	return DefaultSpin
}

// spin re-checks ready until it holds (true) or the budget is spent.
func (s *Spinner) spin(start time.Time, ready func() bool) bool {
	if s == nil {
		return ready()
	}
	limit := s.Bound()
	if limit <= 0 || runtime.GOMAXPROCS(0) < 2 || runtime.NumCPU() < 2 {
		return ready()
	}
	budget := time.Duration(s.budget.Load())
	if budget <= 0 {
		budget = limit
	}
	for i := 1; ; i++ {
		if ready() {
			return true
		}
		if i&31 == 0 {
			if time.Since(start) >= budget {
				return false
			}
			if i&255 == 0 {
				yield()
			}
		}
	}
}

// learn adapts the budget to a wait that spun and then slept for d in all.
func (s *Spinner) learn(d time.Duration) {
	if s == nil {
		return
	}
	limit := s.Bound()
	if limit <= 0 {
		return
	}
	budget := time.Duration(s.budget.Load())
	if budget <= 0 {
		budget = limit
	}
	if d <= 2*limit {
		budget = min(2*budget, limit)
	} else {
		budget = max(budget/2, minSpin)
	}
	// Racing learners may overwrite each other; any of their budgets is
	// within the bounds, which is all the policy needs.
	s.budget.Store(int64(budget))
}
