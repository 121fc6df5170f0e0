//go:build linux

package futex

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

func TestWaitValueMismatchReturnsAtOnce(t *testing.T) {
	var w atomic.Uint32
	w.Store(1)
	start := time.Now()
	if err := Wait(&w, 0, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Wait with stale value slept %v", d)
	}
}

func TestWaitTimeout(t *testing.T) {
	var w atomic.Uint32
	start := time.Now()
	err := Wait(&w, 0, time.Now().Add(20*time.Millisecond))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("returned after %v, before the deadline", d)
	}
	if err := Wait(&w, 0, time.Now().Add(-time.Second)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("past deadline: %v", err)
	}
}

// TestWakeBeforeWait: a store then wake that happen before the sleeper
// calls Wait must not be lost: the value check makes Wait return.
func TestWakeBeforeWait(t *testing.T) {
	var w atomic.Uint32
	w.Store(1)
	if n, err := Wake(&w, All); err != nil || n != 0 {
		t.Fatalf("Wake with no sleepers = %d, %v", n, err)
	}
	if err := Wait(&w, 0, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestWakeBitsetReachesOnlyItsSleepers(t *testing.T) {
	var w atomic.Uint32
	woke := make(chan uint32, 2)
	for _, bits := range []uint32{1, 2} {
		go func() {
			for w.Load() == 0 {
				wait(&w, 0, time.Now().Add(5*time.Second), bits)
				if w.Load() == 0 {
					woke <- bits
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	n, err := wakeBitset(&w, All, 2)
	if err != nil || n != 1 {
		t.Fatalf("wakeBitset(2) woke %d, %v; want 1", n, err)
	}
	if b := <-woke; b != 2 {
		t.Fatalf("woke the sleeper with bits %d", b)
	}
	w.Store(1)
	Wake(&w, All)
}

// ---- Gate ----

func TestGateContextWhileQueued(t *testing.T) {
	var g Gate
	ctx := context.Background()
	if err := g.Enter(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := g.Enter(cctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Enter = %v, want DeadlineExceeded", err)
	}
	abort := make(chan struct{})
	close(abort)
	if err := g.Enter(ctx, abort); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enter with closed abort = %v, want ErrClosed", err)
	}
	g.Leave()
	if !g.TryEnter() {
		t.Fatal("gate not free after the queued goroutines gave up")
	}
	g.Leave()
	if g.state.Load() != 0 || len(g.queue) != 0 {
		t.Fatalf("gate state %d, %d queued", g.state.Load(), len(g.queue))
	}
}

// TestGateMutualExclusion: under churn with cancellations, at most one
// goroutine is inside at a time, and every Enter that returns nil is paired
// with exactly one Leave.
func TestGateMutualExclusion(t *testing.T) {
	var g Gate
	var inside atomic.Int32
	var wg sync.WaitGroup
	var entered atomic.Int64
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 2000; j++ {
				ctx := context.Background()
				var cancel context.CancelFunc = func() {}
				if j%3 == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(j%50)*time.Microsecond)
				}
				if g.Enter(ctx, nil) == nil {
					if inside.Add(1) != 1 {
						t.Error("two goroutines inside the gate")
					}
					entered.Add(1)
					inside.Add(-1)
					g.Leave()
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if g.state.Load() != 0 || len(g.queue) != 0 {
		t.Fatalf("gate left in state %d with %d queued", g.state.Load(), len(g.queue))
	}
	if entered.Load() < 2000 {
		t.Fatalf("only %d entries", entered.Load())
	}
}

// ---- EventCount ----

// fakeHost decides liveness by a set of dead tokens.
type fakeHost struct {
	mu   sync.Mutex
	dead map[uint32]bool
}

func (h *fakeHost) Alive(t uint32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.dead[t]
}

func (h *fakeHost) kill(t uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead == nil {
		h.dead = map[uint32]bool{}
	}
	h.dead[t] = true
}

// ecMem returns 8-byte aligned zeroed memory for an event count.
func ecMem(slots int) []byte {
	words := make([]uint64, Size(slots)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
}

// newECs returns one handle per simulated participant on one event count.
func newECs(t testing.TB, slots, n int, host Host) []*EventCount {
	t.Helper()
	mem := ecMem(slots)
	var out []*EventCount
	for i := 0; i < n; i++ {
		e, err := NewEventCount(mem, slots, i, uint32(100+i), host, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestEventCountLayout(t *testing.T) {
	for _, c := range []struct{ slots, size int }{{1, 8 + 8 + 4 + 4}, {64, 8 + 8 + 256}, {65, 8 + 16 + 260 + 4}, {128, 8 + 16 + 512}} {
		if got := Size(c.slots); got != c.size {
			t.Errorf("Size(%d) = %d, want %d", c.slots, got, c.size)
		}
	}
	mem := ecMem(8)
	if _, err := NewEventCount(mem[:Size(8)-1], 8, 0, 1, &fakeHost{}, nil); !errors.Is(err, ErrLayout) {
		t.Errorf("short memory: %v", err)
	}
	if _, err := NewEventCount(mem[4:], 8, 0, 1, &fakeHost{}, nil); !errors.Is(err, ErrLayout) {
		t.Errorf("misaligned memory: %v", err)
	}
	if _, err := NewEventCount(mem, 8, 8, 1, &fakeHost{}, nil); !errors.Is(err, ErrLayout) {
		t.Errorf("slot out of range: %v", err)
	}
}

// TestEventCountNoLostWakeup: waiters in several "processes" (handles of
// other slots) and goroutines wait for a counter to reach their target
// while wakers bump it; every waiter must finish.
func TestEventCountNoLostWakeup(t *testing.T) {
	host := &fakeHost{}
	ecs := newECs(t, 8, 4, host)
	var count atomic.Int64
	const rounds = 3000
	var wg sync.WaitGroup
	for i, e := range ecs {
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sp := NewSpinner(time.Duration(i%2) * time.Microsecond) // some spin, some sleep at once
				for target := int64(1); target <= rounds; target += int64(1 + i + g) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := e.Wait(ctx, time.Time{}, sp, func() bool { return count.Load() >= target })
					cancel()
					if err != nil {
						t.Errorf("waiter %d/%d at %d: %v", i, g, target, err)
						return
					}
				}
			}()
		}
	}
	for k := 0; k < rounds; k++ {
		count.Add(1)
		ecs[k%len(ecs)].Notify(All)
		if k%64 == 0 {
			time.Sleep(10 * time.Microsecond)
		}
	}
	wg.Wait()
	if ecs[0].Waiting() {
		t.Fatalf("mask %#x left set with no waiter", ecs[0].mask[0].Load())
	}
}

func TestEventCountContextAndDeadline(t *testing.T) {
	ecs := newECs(t, 4, 1, &fakeHost{})
	e := ecs[0]
	never := func() bool { return false }
	// Many goroutines of one process: one sleeps in the kernel, the others
	// queue on the gate; all must leave at their own deadlines.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := time.Duration(20+10*i) * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			start := time.Now()
			err := e.Wait(ctx, time.Time{}, nil, never)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Wait = %v, want DeadlineExceeded", err)
			}
			if took := time.Since(start); took > d+500*time.Millisecond {
				t.Errorf("deadline %v honoured after %v", d, took)
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := e.Wait(ctx, time.Time{}, nil, never); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	if err := e.Wait(context.Background(), time.Now().Add(10*time.Millisecond), nil, never); !errors.Is(err, ErrTimeout) {
		t.Fatalf("deadline: %v", err)
	}
	if e.Waiting() {
		t.Fatal("announcement left behind")
	}
}

func TestEventCountClose(t *testing.T) {
	ecs := newECs(t, 4, 1, &fakeHost{})
	e := ecs[0]
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { errs <- e.Wait(context.Background(), time.Time{}, nil, func() bool { return false }) }()
	}
	time.Sleep(20 * time.Millisecond)
	e.Close()
	for i := 0; i < 3; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Wait after Close = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not reach a waiter")
		}
	}
}

// TestEventCountReclaimsDeadSleeper: a participant that died announced
// costs wakers a syscall only until the next scan; then none.
func TestEventCountReclaimsDeadSleeper(t *testing.T) {
	host := &fakeHost{}
	ecs := newECs(t, 70, 2, host)
	waker := ecs[0]
	// Slot 66 (second mask word) "died" announced, as a killed process
	// leaves it.
	dead := uint32(7777)
	waker.entries[66].Store(dead)
	waker.mask[1].Or(1 << 2)
	host.kill(dead)
	// A live sleeper of another slot is spared.
	live := ecs[1]
	go live.Wait(context.Background(), time.Time{}, nil, func() bool { return false })
	for !live.Waiting() || live.mask[0].Load()&2 == 0 {
		time.Sleep(time.Millisecond)
	}
	waker.nextScan.Store(0)
	for i := 0; i < 100; i++ {
		waker.Notify(1)
	}
	if waker.Reclaimed() != 1 || waker.mask[1].Load() != 0 || waker.entries[66].Load() != 0 {
		t.Fatalf("reclaimed %d; mask %#x %#x; entry %d", waker.Reclaimed(), waker.mask[0].Load(), waker.mask[1].Load(), waker.entries[66].Load())
	}
	if waker.mask[0].Load()&2 == 0 {
		t.Fatal("the live sleeper's announcement was cleared")
	}
	live.Close()
	for live.Waiting() {
		time.Sleep(time.Millisecond)
	}
	before := waker.Wakes()
	for i := 0; i < 1000; i++ {
		waker.Notify(1)
	}
	if d := waker.Wakes() - before; d != 0 {
		t.Fatalf("%d FUTEX_WAKE calls after the dead sleeper was reclaimed", d)
	}
}

// TestEventCountReclaimGarbage: bits beyond the slots and entries naming
// no live participant (a scribbling peer) are cleared too.
func TestEventCountReclaimGarbage(t *testing.T) {
	host := &fakeHost{}
	ecs := newECs(t, 3, 1, host)
	e := ecs[0]
	e.mask[0].Store(^uint64(0))
	e.entries[1].Store(0xdead)
	host.kill(0xdead)
	if n := e.Reclaim(); n != 64 {
		t.Fatalf("Reclaim cleared %d, want 64", n)
	}
	if e.Waiting() {
		t.Fatalf("mask %#x", e.mask[0].Load())
	}
}

func TestEventCountPrepareSleep(t *testing.T) {
	ecs := newECs(t, 4, 2, &fakeHost{})
	a, b := ecs[0], ecs[1]
	s := a.Prepare()
	done := make(chan error, 1)
	go func() { done <- a.Sleep(context.Background(), s, time.Now().Add(5*time.Second)) }()
	time.Sleep(10 * time.Millisecond)
	if !b.Notify(1) {
		t.Fatal("Notify saw no announced waiter")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.Done()
	if a.Waiting() {
		t.Fatal("announcement left behind")
	}
}

func TestSpinnerAdapts(t *testing.T) {
	s := NewSpinner(40 * time.Microsecond)
	s.learn(time.Second) // the peer was idle: halve
	if b := time.Duration(s.budget.Load()); b != 20*time.Microsecond {
		t.Fatalf("budget after a long wait = %v", b)
	}
	for i := 0; i < 20; i++ {
		s.learn(time.Hour)
	}
	if b := time.Duration(s.budget.Load()); b != minSpin {
		t.Fatalf("budget floor = %v", b)
	}
	// A wait that slept costs the sleep and the wakeup, more than the 1 µs
	// floor: a short wait like that must still grow the budget back.
	for i := 0; i < 20; i++ {
		s.learn(8 * time.Microsecond)
	}
	if b := time.Duration(s.budget.Load()); b != 40*time.Microsecond {
		t.Fatalf("budget ceiling = %v", b)
	}
	var zero Spinner
	if zero.Bound() != DefaultSpin {
		t.Fatalf("zero Spinner bound %v, want DefaultSpin", zero.Bound())
	}
	if NewSpinner(-1).spin(time.Now(), func() bool { return false }) {
		t.Fatal("a negative bound spun")
	}
}
