package ringbuf

// A named queue's file truncated by a peer: every call on it, blocked or
// not, returns ErrCorrupt (never SIGBUS, never a hang), and so do the
// JoinableQueue's; after Close, a JoinableQueue's calls return ErrClosed
// instead of touching the unmapped control block.

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

func truncated(t *testing.T, o Options, joinable bool) (*Queue, *JoinableQueue) {
	t.Helper()
	name := testutil.Name(t)
	var q *Queue
	var j *JoinableQueue
	var err error
	if joinable {
		j, err = CreateJoinable(name, o)
		if j != nil {
			q = j.Queue()
		}
	} else {
		q, err = Create(name, o)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); Unlink(name) })
	return q, j
}

func truncate(t *testing.T, q *Queue) {
	t.Helper()
	if err := os.Truncate(shm.Path(q.Segment().Name()), 4096); err != nil {
		t.Fatal(err)
	}
}

func TestTruncatedShutdown(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q, _ := truncated(t, Options{Mode: mode, Capacity: 1 << 16, MaxMessage: 64}, false)
		truncate(t, q)
		if err := q.Shutdown(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Shutdown of a truncated queue = %v, want ErrCorrupt", err)
		}
	})
}

func TestTruncatedJoinable(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q, j := truncated(t, Options{Mode: mode, Capacity: 1 << 16, MaxMessage: 64}, true)
		if err := j.Put(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		truncate(t, q)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for name, call := range map[string]func() error{
			"Put":      func() error { return j.Put(ctx, []byte("y")) },
			"TaskDone": j.TaskDone,
			"Join":     func() error { return j.Join(ctx) },
		} {
			if err := call(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s on a truncated joinable queue = %v, want ErrCorrupt", name, err)
			}
		}
		if n := j.Unfinished(); n != 0 {
			t.Errorf("Unfinished of a broken handle = %d, want 0", n)
		}
	})
}

func TestJoinableAfterClose(t *testing.T) {
	j, err := CreateJoinableAnonymous(Options{Mode: SPSC, Capacity: 4096, MaxMessage: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	for name, call := range map[string]func() error{
		"Put":      func() error { return j.Put(context.Background(), []byte("y")) },
		"TryPut":   func() error { return j.TryPut([]byte("y")) },
		"TaskDone": j.TaskDone,
		"Join":     func() error { return j.Join(context.Background()) },
	} {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if n, err := j.PutBatch(context.Background(), [][]byte{[]byte("z")}); n != 0 || !errors.Is(err, ErrClosed) {
		t.Errorf("PutBatch after Close = %d, %v", n, err)
	}
	if n := j.Unfinished(); n != 0 {
		t.Errorf("Unfinished after Close = %d, want 0", n)
	}
}

// TestTruncatedUnderSleeper: a Get asleep in the kernel when the file is
// truncated cannot be woken through its futex word (the wake faults):
// it sleeps in slices, so it returns ErrCorrupt without a wake, at once
// after its context is cancelled, and Close does not hang.
func TestTruncatedUnderSleeper(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		for _, how := range []string{"cancel", "close", "none"} {
			t.Run(how, func(t *testing.T) {
				q, _ := truncated(t, Options{Mode: mode, Capacity: 4096, MaxMessage: 64, Spin: -1}, false)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan error, 1)
				go func() { _, err := q.Get(ctx); done <- err }()
				testutil.AwaitSleeper(t, q.c.notEmpty.Waiting)
				truncate(t, q)
				switch how {
				case "cancel":
					cancel()
				case "close":
					if err := returnsWithin(t, 2*time.Second, q.Close); err != nil {
						t.Fatalf("Close = %v", err)
					}
				}
				select {
				case err := <-done:
					// Whichever comes first: the fault, or what ended the call.
					want := map[string]error{"cancel": context.Canceled, "close": ErrClosed, "none": ErrCorrupt}[how]
					if !errors.Is(err, ErrCorrupt) && !errors.Is(err, want) {
						t.Fatalf("Get = %v, want ErrCorrupt or %v", err, want)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("Get still blocked 2 s after the truncation")
				}
			})
		}
	})
}
