package ringbuf

// Sleeping and waking: the "notifier" protocol.
//
// A notifier is two words on their own cache line: seq (the futex word) and
// waiters (how many goroutines, in any process, may be asleep on seq).
//
// Sleeper (a consumer finding the ring empty, or a producer finding it
// full):
//
//	waiters+1; s := seq; re-check the ring; if still blocked,
//	FUTEX_WAIT(seq, s); waiters-1
//
// Waker (after publishing a record, or freeing space):
//
//	publish (atomic store); if waiters > 0 { seq+1; FUTEX_WAKE(seq, n) }
//
// Why no wakeup is lost (all atomics here are sequentially consistent): if
// the waker's load of waiters saw 0, the sleeper's increment comes later in
// the total order, so its re-check of the ring comes after the publish and
// sees it. If the waker saw the sleeper, it bumps seq: a sleeper that read
// s before the bump fails FUTEX_WAIT with EAGAIN or is asleep and woken; one
// that read s after the bump re-checks the ring after the publish. The cost
// on the fast path is one load of a line that changes only when someone
// goes to sleep.
//
// With several sleepers that argument is per wakeup: each publish wakes one,
// but the taker of a message need not be the one woken, and a taker may
// stop while messages remain. MPMC takers therefore chain: after taking, if
// another message is published and a sleeper announced, wake one more
// (Queue.chainConsumers, chainProducers). Without it a consumer could sleep
// forever beside a full queue (found by the bench: 1 producer, 3
// consumers that each stop after their share).

import (
	"context"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

type notifier struct {
	seg     *shm.Segment
	seq     *atomic.Uint32
	waiters *atomic.Uint32
	gate    *futex.Gate
}

// wake wakes up to n sleepers if any announced themselves. It reports
// whether it made the syscall.
func (n *notifier) wake(k int) bool {
	if n.waiters.Load() == 0 {
		return false
	}
	n.seq.Add(1)
	futex.Wake(n.seq, k)
	return true
}

// sleep blocks until ready() holds, ctx ends, the limit passes
// (futex.ErrTimeout) or the segment closes (shm.ErrClosed). It spins first
// (see spinner). sleeps counts the times it entered the kernel. The caller
// holds a pin on the segment.
func (n *notifier) sleep(ctx context.Context, sp *spinner, limit time.Time, ready func() bool, sleeps *uint64) error {
	start := time.Now()
	if sp.spin(start, ready) {
		return nil
	}
	defer func() { sp.learn(time.Since(start)) }()
	n.waiters.Add(1)
	defer n.waiters.Add(math.MaxUint32)
	for {
		s := n.seq.Load()
		if ready() {
			return nil
		}
		if err := n.gate.Enter(ctx, nil); err != nil {
			return err
		}
		*sleeps++
		err := n.seg.Sleep(ctx, n.seq, s, limit)
		n.gate.Leave()
		if err != nil {
			if ready() {
				// We may have swallowed the wakeup meant for another
				// sleeper; pass it on before giving up.
				n.seq.Add(1)
				futex.Wake(n.seq, 1)
			}
			return err
		}
	}
}

// spinner decides how long a blocked call spins before sleeping. A sleep
// costs a FUTEX_WAIT and, worse, a wakeup of an idle CPU (tens of µs on a
// VM); spinning costs a CPU. The spinner spins up to budget, which it
// adapts from the waits it sees: a wait that ended soon after the spin gave
// up (within 4x the budget) means a longer spin would have caught it, so
// the budget doubles (up to max); a long wait means the peer was idle, so it
// halves (down to 1 µs, where it stops mattering).
type spinner struct {
	max, budget time.Duration
}

const minSpin = time.Microsecond

func newSpinner(max time.Duration) spinner {
	if max == 0 {
		max = defaultSpin
	}
	return spinner{max: max, budget: max}
}

// spin re-checks ready until it holds (true) or the budget is spent.
func (s *spinner) spin(start time.Time, ready func() bool) bool {
	if s.max <= 0 || runtime.GOMAXPROCS(0) < 2 || runtime.NumCPU() < 2 {
		return ready()
	}
	for i := 1; ; i++ {
		if ready() {
			return true
		}
		if i&31 == 0 {
			if time.Since(start) >= s.budget {
				return false
			}
			if i&255 == 0 {
				// Give the CPU away now and then: when the peer shares it
				// (more runnable threads than CPUs), spinning alone would
				// only delay the very step we wait for. With nobody else
				// runnable, sched_yield returns at once.
				osYield()
			}
		}
	}
}

// learn adapts the budget to a wait that spun and then slept for d in all.
func (s *spinner) learn(d time.Duration) {
	if s.max <= 0 {
		return
	}
	if d < 4*s.budget {
		s.budget = min(2*s.budget, s.max)
	} else {
		s.budget = max(s.budget/2, minSpin)
	}
}
