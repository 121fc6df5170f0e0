package ringbuf

// What a handle promises its goroutines: a call waiting behind a sibling
// honours its context, no side is held from one call to the next, and
// Close releases the handle (not the queue). Each test failed on main
// before the wait primitive and the scoped zero-copy forms (e7655af).

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

// returnsWithin runs call on its own goroutine and reports its error, or fails
// the test if it has not returned within limit.
func returnsWithin(t *testing.T, limit time.Duration, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("call still blocked after %v", limit)
		return nil
	}
}

// TestContextBehindSibling: with one goroutine blocked in Put on a full
// queue (or Get on an empty one), a second goroutine's call on the same
// handle returns at its own deadline.
func TestContextBehindSibling(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		for _, side := range []string{"put", "get"} {
			t.Run(side, func(t *testing.T) {
				q := newQ(t, Options{Mode: mode, Capacity: 256, MaxMessage: 16})
				if side == "put" {
					for q.TryPut(make([]byte, 8)) == nil {
					}
				}
				call := func(ctx context.Context) error {
					if side == "put" {
						return q.Put(ctx, make([]byte, 8))
					}
					_, err := q.GetInto(ctx, make([]byte, 16))
					return err
				}
				first := make(chan error, 1)
				go func() { first <- call(context.Background()) }()
				time.Sleep(20 * time.Millisecond)
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				start := time.Now()
				if err := returnsWithin(t, 2*time.Second, func() error { return call(ctx) }); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("second call = %v, want DeadlineExceeded", err)
				}
				t.Logf("second call returned after %v", time.Since(start).Round(time.Millisecond))
				// Close wakes the first one too.
				q.Close()
				if err := <-first; !errors.Is(err, ErrClosed) {
					t.Fatalf("first call after Close = %v, want ErrClosed", err)
				}
			})
		}
	})
	t.Run("pipe", func(t *testing.T) {
		a, b, err := NewPipe(PipeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		first := make(chan error, 1)
		go func() { _, err := b.Recv(context.Background()); first <- err }()
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := returnsWithin(t, 2*time.Second, func() error { _, err := b.Recv(ctx); return err }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second Recv = %v, want DeadlineExceeded", err)
		}
		b.Close()
		if err := <-first; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("first Recv after Close = %v", err)
		}
	})
}

// TestTryBesideBlockedCall: a blocked call holds no side while it sleeps,
// so Try calls of a sibling answer at once.
func TestTryBesideBlockedCall(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 256, MaxMessage: 16})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan error, 1)
		go func() { _, err := q.Get(ctx); got <- err }()
		time.Sleep(20 * time.Millisecond)
		if err := returnsWithin(t, time.Second, func() error { _, err := q.TryGet(); return err }); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryGet beside a blocked Get = %v", err)
		}
		if err := returnsWithin(t, time.Second, func() error { return q.TryPut([]byte("x")) }); err != nil {
			t.Fatalf("TryPut beside a blocked Get = %v", err)
		}
		if err := <-got; err != nil {
			t.Fatalf("the blocked Get = %v, want the message", err)
		}
	})
}

// TestWithReserveHoldsSideOnlyInside: another goroutine's Put waits while
// a WithReserve callback runs, honouring its context, and goes through
// once the callback returned.
func TestWithReserveHoldsSideOnlyInside(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 4096, MaxMessage: 64})
		inside := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- q.WithReserve(context.Background(), 8, func(room []byte) (int, error) {
				close(inside)
				<-release
				return copy(room, "reserved"), nil
			})
		}()
		<-inside
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := returnsWithin(t, 2*time.Second, func() error { return q.Put(ctx, []byte("other")) }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put during a WithReserve callback = %v, want DeadlineExceeded", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := q.Put(context.Background(), []byte("other")); err != nil {
			t.Fatalf("Put after the callback = %v", err)
		}
		for _, want := range []string{"reserved", "other"} {
			if m, err := q.TryGet(); err != nil || string(m) != want {
				t.Fatalf("TryGet = %q, %v; want %q", m, err, want)
			}
		}
	})
}

// TestCloseReleasesHandle: Close frees this handle's participant slot and
// leaves the queue open for the others; Shutdown is what closes the queue.
func TestCloseReleasesHandle(t *testing.T) {
	name := testutil.Name(t)
	q, err := Create(name, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Unlink(name)
	defer q.Close()
	h, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	slot := h.Segment().Self().Slot()
	if err := h.TryPut([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	ps, err := q.Segment().Participants()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Slot == slot && p.Alive {
			t.Fatalf("participant slot %d still alive after Close", slot)
		}
	}
	// The closed handle held the SPSC producer side: it is free again.
	if err := q.TryPut([]byte("y")); err != nil {
		t.Fatalf("Put after another handle's Close: %v", err)
	}
	if st := q.Stats(); st.Closed || st.Puts != 2 {
		t.Fatalf("stats after a handle's Close: %+v", st)
	}
	if err := q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := q.TryPut([]byte("z")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Shutdown = %v, want ErrClosed", err)
	}
}
