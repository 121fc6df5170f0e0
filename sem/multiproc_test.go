package sem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/sem"
	"github.com/shmkit/shmkit/shm"
)

// newSeg creates a named segment for one test and removes it afterwards.
func newSeg(t testing.TB) (*shm.Segment, string) {
	t.Helper()
	name := testutil.Name(t)
	seg, err := shm.Create(name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		seg.Close()
		shm.Unlink(name)
	})
	return seg, name
}

// openSeg attaches a child to the segment named in $SEG.
func openSeg() (*shm.Segment, error) { return shm.Open(os.Getenv("SEG")) }

func envInt(key string) int {
	n, _ := strconv.Atoi(os.Getenv(key))
	return n
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func waitAll(t *testing.T, ctx context.Context, cs ...*testutil.Child) {
	t.Helper()
	for i, c := range cs {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
}

const perProcess = 1_000_000

func roleCountLocked(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	mu, err := sem.LookupMutex(seg, "mu")
	if err != nil {
		return err
	}
	n, err := shm.LookupValue[int64](seg, "n")
	if err != nil {
		return err
	}
	for i := 0; i < perProcess; i++ {
		if err := mu.Lock(ctx); err != nil {
			return err
		}
		// A plain read-modify-write: only the lock makes it exact.
		n.Store(n.Load() + 1)
		if err := mu.Unlock(); err != nil {
			return err
		}
	}
	return nil
}

func TestMutexCountAcrossProcesses(t *testing.T) {
	seg, name := newSeg(t)
	must(sem.NewMutex(seg, "mu"))
	n := must(shm.NewValue[int64](seg, "n"))
	ctx := testutil.Context(t)
	a := testutil.Spawn(t, "count-locked", testutil.Env("SEG", name))
	b := testutil.Spawn(t, "count-locked", testutil.Env("SEG", name))
	waitAll(t, ctx, a, b)
	if got := n.Load(); got != 2*perProcess {
		t.Fatalf("count = %d, want %d", got, 2*perProcess)
	}
}

func roleCountAtomic(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	n, err := shm.LookupValue[int64](seg, "n")
	if err != nil {
		return err
	}
	for i := 0; i < perProcess; i++ {
		n.Add(1)
	}
	return nil
}

func TestValueAddAcrossProcesses(t *testing.T) {
	seg, name := newSeg(t)
	n := must(shm.NewValue[int64](seg, "n"))
	ctx := testutil.Context(t)
	a := testutil.Spawn(t, "count-atomic", testutil.Env("SEG", name))
	b := testutil.Spawn(t, "count-atomic", testutil.Env("SEG", name))
	waitAll(t, ctx, a, b)
	if got := n.Load(); got != 2*perProcess {
		t.Fatalf("count = %d, want %d", got, 2*perProcess)
	}
}

func roleEventWait(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	ev, err := sem.LookupEvent(seg, "ev")
	if err != nil {
		return err
	}
	testutil.Signal("waiting")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := ev.Wait(wctx); err != nil {
		return fmt.Errorf("event wait: %w", err)
	}
	testutil.Signal("woken")
	return nil
}

func TestEventWakesOtherProcess(t *testing.T) {
	seg, name := newSeg(t)
	ev := must(sem.NewEvent(seg, "ev"))
	ctx := testutil.Context(t)
	var cs []*testutil.Child
	for i := 0; i < 3; i++ {
		c := testutil.Spawn(t, "event-wait", testutil.Env("SEG", name))
		if err := c.Await(ctx, "waiting"); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	// Give the children time to go to sleep in the kernel, so the test
	// covers the wake path and not only the fast path.
	time.Sleep(50 * time.Millisecond)
	if ev.IsSet() {
		t.Fatal("event set before Set")
	}
	ev.Set()
	for _, c := range cs {
		if err := c.Await(ctx, "woken"); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, ctx, cs...)
}

const semPermits = 3

func roleSemAdmit(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	s := must(sem.LookupSemaphore(seg, "s"))
	inside := must(shm.LookupValue[int64](seg, "inside"))
	peak := must(shm.LookupValue[int64](seg, "peak"))
	for i := 0; i < 2000; i++ {
		if err := s.Acquire(ctx); err != nil {
			return err
		}
		now := inside.Add(1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		if now > semPermits {
			return fmt.Errorf("%d processes inside a semaphore of %d", now, semPermits)
		}
		for j := 0; j < 200; j++ { // hold it a moment so others pile up
			_ = inside.Load()
		}
		inside.Add(-1)
		if err := s.Release(); err != nil {
			return err
		}
	}
	return nil
}

func TestSemaphoreAdmitsAtMostCount(t *testing.T) {
	seg, name := newSeg(t)
	s := must(sem.NewSemaphore(seg, "s", semPermits, semPermits))
	must(shm.NewValue[int64](seg, "inside"))
	peak := must(shm.NewValue[int64](seg, "peak"))
	ctx := testutil.Context(t)
	var cs []*testutil.Child
	for i := 0; i < 8; i++ {
		cs = append(cs, testutil.Spawn(t, "sem-admit", testutil.Env("SEG", name)))
	}
	waitAll(t, ctx, cs...)
	if p := peak.Load(); p > semPermits || p < 1 {
		t.Fatalf("peak inside = %d, want 1..%d", p, semPermits)
	}
	if v := s.Value(); v != semPermits {
		t.Fatalf("permits after = %d, want %d", v, semPermits)
	}
	t.Logf("peak concurrency %d of %d", peak.Load(), semPermits)
}

const barrierRounds = 50

func roleBarrierRounds(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	b := must(sem.LookupBarrier(seg, "b"))
	arrived := must(shm.LookupValue[int64](seg, "arrived"))
	seen := uint64(0)
	for r := 1; r <= barrierRounds; r++ {
		arrived.Add(1)
		idx, err := b.Wait(ctx)
		if err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		// Nobody passes round r before all parties arrived for it.
		if a := arrived.Load(); a < int64(r*b.Parties()) {
			return fmt.Errorf("round %d: released with %d arrivals", r, a)
		}
		seen |= 1 << idx
	}
	testutil.Signal("indexes-" + strconv.FormatUint(seen, 2))
	return nil
}

func TestBarrierReleasesTogether(t *testing.T) {
	seg, name := newSeg(t)
	must(sem.NewBarrier(seg, "b", 4))
	must(shm.NewValue[int64](seg, "arrived"))
	ctx := testutil.Context(t)
	var cs []*testutil.Child
	for i := 0; i < 4; i++ {
		cs = append(cs, testutil.Spawn(t, "barrier-rounds", testutil.Env("SEG", name)))
	}
	waitAll(t, ctx, cs...)
}

func roleBarrierWait(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	b := must(sem.LookupBarrier(seg, "b"))
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = b.Wait(wctx)
	if !errors.Is(err, sem.ErrBroken) {
		return fmt.Errorf("Wait = %v, want ErrBroken", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("barrier broke by timeout, not by the death: %w", err)
	}
	return nil
}

func TestBarrierBreaksWhenPartyKilled(t *testing.T) {
	seg, name := newSeg(t)
	b := must(sem.NewBarrier(seg, "b", 4))
	ctx := testutil.Context(t)
	var cs []*testutil.Child
	for i := 0; i < 3; i++ {
		cs = append(cs, testutil.Spawn(t, "barrier-wait", testutil.Env("SEG", name)))
	}
	for b.NWaiting() < 3 {
		if ctx.Err() != nil {
			t.Fatal("children never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := cs[0].Kill(); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, cs[1:]...)
	t.Logf("survivors saw the barrier broken %v after the kill", time.Since(start))
	if !b.Broken() {
		t.Fatal("barrier not broken")
	}
	if err := b.Reset(ctx); err != nil || b.Broken() {
		t.Fatalf("Reset = %v, broken %v", err, b.Broken())
	}
}

const condItems = 20000

func roleCondConsumer(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	mu := must(sem.LookupMutex(seg, "mu"))
	full := must(sem.LookupCond(seg, "full"))
	empty := must(sem.LookupCond(seg, "empty"))
	slot := must(shm.LookupValue[int64](seg, "slot")) // 0: empty, else item+1
	for want := int64(0); want < condItems; want++ {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := mu.Lock(wctx); err != nil {
			cancel()
			return err
		}
		for slot.Load() == 0 {
			if err := full.Wait(wctx, mu); err != nil {
				cancel()
				return fmt.Errorf("item %d: lost signal? %w", want, err)
			}
		}
		if got := slot.Load() - 1; got != want {
			cancel()
			return fmt.Errorf("got item %d, want %d", got, want)
		}
		slot.Store(0)
		empty.Signal()
		cancel()
		if err := mu.Unlock(); err != nil {
			return err
		}
	}
	return nil
}

func TestCondHandOffAcrossProcesses(t *testing.T) {
	seg, name := newSeg(t)
	mu := must(sem.NewMutex(seg, "mu"))
	full := must(sem.NewCond(seg, "full"))
	empty := must(sem.NewCond(seg, "empty"))
	slot := must(shm.NewValue[int64](seg, "slot"))
	ctx := testutil.Context(t)
	c := testutil.Spawn(t, "cond-consumer", testutil.Env("SEG", name))
	for i := int64(0); i < condItems; i++ {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := mu.Lock(wctx); err != nil {
			t.Fatal(err)
		}
		for slot.Load() != 0 {
			if err := empty.Wait(wctx, mu); err != nil {
				t.Fatalf("item %d: lost signal? %v", i, err)
			}
		}
		slot.Store(i + 1)
		full.Signal()
		cancel()
		if err := mu.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	waitAll(t, ctx, c)
}
