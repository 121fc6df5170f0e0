//go:build linux

package futex

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
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

func TestWakeWakesSleeper(t *testing.T) {
	var w atomic.Uint32
	done := make(chan error, 1)
	go func() {
		// Loop as every caller must: wakeups may be spurious.
		for w.Load() == 0 {
			if err := Wait(&w, 0, time.Now().Add(10*time.Second)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	time.Sleep(10 * time.Millisecond)
	w.Store(1)
	Wake(&w, 1)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWaitContextCancel(t *testing.T) {
	var w atomic.Uint32
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	err := WaitContext(ctx, &w, 0, time.Time{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitContext = %v, want Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancel took %v to reach the sleeper", d)
	}
}

func TestWaitContextDeadlineAndLimit(t *testing.T) {
	var w atomic.Uint32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := WaitContext(ctx, &w, 0, time.Time{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v", err)
	}
	err := WaitContext(context.Background(), &w, 0, time.Now().Add(10*time.Millisecond))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("limit: %v", err)
	}
}

func TestGate(t *testing.T) {
	g := NewGate()
	ctx := context.Background()
	if err := g.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := g.Enter(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Enter = %v, want DeadlineExceeded", err)
	}
	g.Leave()
	if err := g.Enter(ctx); err != nil {
		t.Fatal(err)
	}
	g.Leave()
}
