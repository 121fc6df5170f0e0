package sem_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/sem"
	"github.com/shmkit/shmkit/shm"
)

func anonSeg(t *testing.T) *shm.Segment {
	t.Helper()
	seg, err := shm.CreateAnonymous(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return seg
}

// promptly runs f with a context that ends after 30ms and checks it
// returns ctx's error soon after.
func promptly(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s = %v, want DeadlineExceeded", what, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%s returned %v after its deadline", what, d)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); ccancel() }()
	if err := f(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("%s after cancel = %v, want Canceled", what, err)
	}
}

func TestBlockingCallsHonourContext(t *testing.T) {
	seg := anonSeg(t)
	ctx := context.Background()
	mu := must(sem.NewMutex(seg, "mu"))
	mu.Lock(ctx)
	s := must(sem.NewSemaphore(seg, "s", 0, 0))
	ev := must(sem.NewEvent(seg, "ev"))
	b := must(sem.NewBarrier(seg, "b", 2))
	rm := must(sem.NewRMutex(seg, "rm"))
	held := make(chan struct{})
	release := make(chan struct{})
	finished := make(chan struct{})
	go func() { rm.Lock(ctx); close(held); <-release; rm.Unlock(); close(finished) }()
	<-held
	// The holder must be done before the segment is closed by Cleanup.
	defer func() { close(release); <-finished }()

	// The holder is this process, so no goroutine here can get it.
	promptly(t, "Mutex.Lock", mu.Lock)
	promptly(t, "RMutex.Lock", rm.Lock)
	promptly(t, "Semaphore.Acquire", s.Acquire)
	promptly(t, "Event.Wait", ev.Wait)
	promptly(t, "Barrier.Wait", func(ctx context.Context) error {
		b.Reset(context.Background())
		_, err := b.Wait(ctx)
		if !errors.Is(err, sem.ErrBroken) {
			t.Errorf("Barrier.Wait timeout = %v, want ErrBroken too", err)
		}
		return err
	})
	if s.Value() != 0 {
		t.Errorf("a cancelled Acquire changed the count to %d", s.Value())
	}
}

func TestRMutexRecursionAndOwnership(t *testing.T) {
	seg := anonSeg(t)
	ctx := context.Background()
	rm := must(sem.NewRMutex(seg, "rm"))
	for i := 0; i < 3; i++ {
		if err := rm.Lock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	other := make(chan error, 2)
	go func() {
		other <- rm.Unlock() // not the owner
		other <- rm.TryLock()
	}()
	if err := <-other; !errors.Is(err, sem.ErrNotOwner) {
		t.Fatalf("Unlock by another goroutine = %v, want ErrNotOwner", err)
	}
	if err := <-other; !errors.Is(err, sem.ErrLocked) {
		t.Fatalf("TryLock by another goroutine = %v, want ErrLocked", err)
	}
	for i := 0; i < 3; i++ {
		if err := rm.Unlock(); err != nil {
			t.Fatalf("unlock %d: %v", i, err)
		}
	}
	if err := rm.Unlock(); !errors.Is(err, sem.ErrNotOwner) {
		t.Fatalf("extra Unlock = %v, want ErrNotOwner", err)
	}
	go func() { other <- rm.TryLock() }()
	if err := <-other; err != nil {
		t.Fatalf("TryLock after full unlock = %v", err)
	}
}

func TestMutexMisuse(t *testing.T) {
	seg := anonSeg(t)
	mu := must(sem.NewMutex(seg, "mu"))
	if err := mu.Unlock(); !errors.Is(err, sem.ErrNotOwner) {
		t.Fatalf("Unlock of a free lock = %v", err)
	}
	if err := mu.MarkConsistent(); !errors.Is(err, sem.ErrNotOwner) {
		t.Fatalf("MarkConsistent of a free lock = %v", err)
	}
	if _, err := sem.LookupSemaphore(seg, "mu"); !errors.Is(err, shm.ErrKindMismatch) {
		t.Fatalf("LookupSemaphore of a mutex = %v", err)
	}
}

func TestSemaphoreBound(t *testing.T) {
	seg := anonSeg(t)
	if _, err := sem.NewSemaphore(seg, "bad", 3, 2); !errors.Is(err, sem.ErrInvalid) {
		t.Fatalf("initial above bound = %v", err)
	}
	s := must(sem.NewSemaphore(seg, "s", 1, 1))
	if err := s.Release(); !errors.Is(err, sem.ErrOverflow) {
		t.Fatalf("Release at bound = %v", err)
	}
	peer := must(sem.LookupSemaphore(seg, "s"))
	if peer.Bound() != 1 || !peer.TryAcquire() || peer.TryAcquire() {
		t.Fatal("looked-up semaphore lost its bound or count")
	}
}

func TestEventClear(t *testing.T) {
	seg := anonSeg(t)
	ev := must(sem.NewEvent(seg, "ev"))
	ev.Set()
	ev.Set()
	ev.Clear()
	if ev.IsSet() {
		t.Fatal("set after Clear")
	}
}

func TestCondBroadcastWakesAll(t *testing.T) {
	seg := anonSeg(t)
	ctx := context.Background()
	mu := must(sem.NewMutex(seg, "mu"))
	c := must(sem.NewCond(seg, "c"))
	flag := must(shm.NewValue[int32](seg, "flag"))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			mu.Lock(wctx)
			for flag.Load() == 0 {
				if err := c.Wait(wctx, mu); err != nil {
					t.Error(err)
					break
				}
			}
			mu.Unlock()
		}()
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock(ctx)
	flag.Store(1)
	c.Broadcast()
	mu.Unlock()
	wg.Wait()
}

func TestBarrierAbortAndReset(t *testing.T) {
	seg := anonSeg(t)
	ctx := context.Background()
	b := must(sem.NewBarrier(seg, "b", 2))
	errc := make(chan error, 1)
	go func() { _, err := b.Wait(ctx); errc <- err }()
	for b.NWaiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	if err := b.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, sem.ErrBroken) {
		t.Fatalf("waiter after Abort = %v", err)
	}
	if _, err := b.Wait(ctx); !errors.Is(err, sem.ErrBroken) {
		t.Fatalf("Wait on a broken barrier = %v", err)
	}
	// Reset while someone waits: that waiter sees the break, and the
	// barrier then works for a fresh pair.
	b.Reset(ctx)
	go func() { _, err := b.Wait(ctx); errc <- err }()
	for b.NWaiting() < 1 {
		time.Sleep(time.Millisecond)
	}
	b.Reset(ctx)
	if err := <-errc; !errors.Is(err, sem.ErrBroken) {
		t.Fatalf("waiter during Reset = %v", err)
	}
	go func() { _, err := b.Wait(ctx); errc <- err }()
	if _, err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := sem.NewBarrier(seg, "zero", 0); !errors.Is(err, sem.ErrInvalid) {
		t.Fatalf("zero parties = %v", err)
	}
}

// TestEventSetClearReleasesWaiter: a Set immediately undone by Clear still
// releases those already waiting.
func TestEventSetClearReleasesWaiter(t *testing.T) {
	seg := anonSeg(t)
	ev := must(sem.NewEvent(seg, "ev"))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- ev.Wait(ctx)
	}()
	time.Sleep(20 * time.Millisecond)
	ev.Set()
	ev.Clear()
	if err := <-done; err != nil {
		t.Fatalf("Wait across Set+Clear = %v", err)
	}
}
