package ringbuf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

func init() {
	roles["joinable-worker"] = roleJoinableWorker
}

func newJQ(t testing.TB, o Options) *JoinableQueue {
	t.Helper()
	j, err := CreateJoinableAnonymous(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestJoinableJoinAfterTaskDone(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		j := newJQ(t, Options{Mode: mode, Capacity: 1 << 14, MaxMessage: 64})
		ctx := testutil.Context(t)
		if err := j.Join(ctx); err != nil {
			t.Fatalf("Join on an empty queue = %v", err)
		}
		const n = 50
		for i := 0; i < n; i++ {
			if err := j.Put(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if got := j.Unfinished(); got != n {
			t.Fatalf("Unfinished = %d, want %d", got, n)
		}
		var done sync.WaitGroup
		// In Go memory with Go atomics: the race detector does not see the
		// ordering that atomics in the mapping give.
		var finished atomic.Int32
		done.Add(1)
		go func() {
			defer done.Done()
			for i := 0; i < n; i++ {
				m, err := j.Get(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(100 * time.Microsecond)
				if int(m[0]) != i {
					t.Errorf("got task %d, want %d", m[0], i)
				}
				finished.Add(1)
				if err := j.TaskDone(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		if err := j.Join(ctx); err != nil {
			t.Fatal(err)
		}
		// Join returned, so every TaskDone happened, and each came after
		// its task was counted.
		if got := finished.Load(); got != n {
			t.Fatalf("Join returned after %d of %d tasks", got, n)
		}
		done.Wait()
		if got := j.Unfinished(); got != 0 {
			t.Fatalf("Unfinished after Join = %d", got)
		}
	})
}

func TestJoinableTaskDoneTooMany(t *testing.T) {
	j := newJQ(t, Options{Mode: MPMC, Capacity: 1 << 12, MaxMessage: 32})
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("TaskDone on nothing = %v", err)
	}
	if err := j.TryPut([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := j.TryGet(); err != nil {
		t.Fatal(err)
	}
	if err := j.TaskDone(); err != nil {
		t.Fatal(err)
	}
	if err := j.TaskDone(); !errors.Is(err, ErrTaskDone) {
		t.Fatalf("second TaskDone = %v", err)
	}
	if got := j.Unfinished(); got != 0 {
		t.Fatalf("Unfinished = %d", got)
	}
}

func TestJoinableTimeout(t *testing.T) {
	j := newJQ(t, Options{Mode: SPSC, Capacity: 1 << 12})
	if err := j.TryPut([]byte("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := j.Join(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join with an unfinished task = %v", err)
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("Join returned after %v, before its deadline", d)
	}
	// A cancelled Join leaves no waiter behind.
	if j.q.c.join.Waiting() {
		t.Fatal("a joiner is still announced after Join returned")
	}
}

// TestJoinableRollback: puts that fail are not counted, and a blocked Put
// that fails as the only task lets a waiting Join return.
func TestJoinableRollback(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		j := newJQ(t, Options{Mode: mode, Capacity: 256, MaxMessage: 32})
		ctx := testutil.Context(t)
		if err := j.TryPut(make([]byte, 33)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversize TryPut = %v", err)
		}
		if k, err := j.PutBatch(ctx, [][]byte{{1}, make([]byte, 33)}); k != 1 || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("PutBatch with an oversize second message = %d, %v", k, err)
		}
		if got := j.Unfinished(); got != 1 {
			t.Fatalf("Unfinished = %d after one good put", got)
		}
		if _, err := j.TryGet(); err != nil {
			t.Fatal(err)
		}
		if err := j.TaskDone(); err != nil {
			t.Fatal(err)
		}

		// Fill the ring with uncounted messages: a counted Put now blocks,
		// and is the only task.
		for j.Queue().TryPut([]byte("x")) == nil {
		}
		if err := j.TryPut([]byte("x")); !errors.Is(err, ErrFull) || j.Unfinished() != 0 {
			t.Fatalf("TryPut on full = %v, Unfinished %d", err, j.Unfinished())
		}
		putCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		putErr := make(chan error, 1)
		go func() { putErr <- j.Put(putCtx, []byte("0123456789")) }()
		for j.Unfinished() == 0 {
			time.Sleep(time.Millisecond)
		}
		if err := j.Join(ctx); err != nil {
			t.Fatalf("Join = %v", err)
		}
		if err := <-putErr; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("blocked Put = %v", err)
		}
		if got := j.Unfinished(); got != 0 {
			t.Fatalf("Unfinished = %d after the failed Put", got)
		}
	})
}

// TestJoinableJoinersAcrossHandles: several joiners, two of them on a
// second handle, all return after the last TaskDone, and Detach wakes a
// joiner of the detached handle.
func TestJoinableJoinersAcrossHandles(t *testing.T) {
	name := testutil.Name(t)
	j, err := CreateJoinable(name, Options{Mode: MPMC, Capacity: 1 << 12, MaxMessage: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Unlink()
	defer j.Close()
	j2, err := OpenJoinable(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testutil.Context(t)
	for i := 0; i < 3; i++ {
		if err := j.Put(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 4)
	for _, h := range []*JoinableQueue{j, j, j2, j2} {
		go func() { errs <- h.Join(ctx) }()
	}
	for i := 0; i < 3; i++ {
		time.Sleep(5 * time.Millisecond)
		select {
		case err := <-errs:
			t.Fatalf("Join returned %v with %d tasks left", err, 3-i)
		default:
		}
		if _, err := j2.Get(ctx); err != nil {
			t.Fatal(err)
		}
		if err := j2.TaskDone(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	j.Put(ctx, []byte("pending"))
	go func() { errs <- j2.Join(ctx) }()
	time.Sleep(10 * time.Millisecond)
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, ErrClosed) {
		t.Fatalf("Join on a closed handle = %v", err)
	}
}

// roleJoinableWorker gets tasks from the inherited queue until it is
// closed, records each in the inherited counter segment, then marks it
// done.
func roleJoinableWorker(ctx context.Context) error {
	j, err := OpenJoinableFile(testutil.InheritedFile(0))
	if err != nil {
		return err
	}
	defer j.Close()
	seg, err := shm.OpenFile(testutil.InheritedFile(1))
	if err != nil {
		return err
	}
	defer seg.Close()
	done, err := shm.LookupValue[int64](seg, "done")
	if err != nil {
		return err
	}
	mine, err := shm.LookupValue[int64](seg, "by-"+os.Getenv("WORKER"))
	if err != nil {
		return err
	}
	testutil.Signal("ready")
	for {
		if _, err := j.Get(ctx); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		time.Sleep(200 * time.Microsecond) // the "work"
		done.Add(1)
		mine.Add(1)
		if err := j.TaskDone(); err != nil {
			return err
		}
	}
}

// TestJoinableMultiProcess: the parent puts N tasks, two worker processes
// take them and mark them done, and the parent's Join returns only when
// every task has been recorded as done.
func TestJoinableMultiProcess(t *testing.T) {
	const n = 300
	j := newJQ(t, Options{Mode: MPMC, Capacity: 1 << 16, MaxMessage: 64})
	seg, err := shm.CreateAnonymous(1 << 12)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	done, err := shm.NewValue[int64](seg, "done")
	if err != nil {
		t.Fatal(err)
	}
	var per [2]*shm.Value[int64]
	for i := range per {
		if per[i], err = shm.NewValue[int64](seg, "by-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testutil.Context(t)
	var children []*testutil.Child
	for i := 0; i < 2; i++ {
		qf, err := j.File()
		if err != nil {
			t.Fatal(err)
		}
		sf, err := seg.File()
		if err != nil {
			t.Fatal(err)
		}
		c := testutil.Spawn(t, "joinable-worker", testutil.Files(qf, sf), testutil.Env("WORKER", strconv.Itoa(i)))
		qf.Close()
		sf.Close()
		children = append(children, c)
	}
	for _, c := range children {
		if err := c.Await(ctx, "ready"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := j.Put(ctx, fmt.Appendf(nil, "task %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Join(ctx); err != nil {
		t.Fatal(err)
	}
	if got := done.Load(); got != n {
		t.Fatalf("Join returned with %d of %d tasks done", got, n)
	}
	j.Shutdown()
	for _, c := range children {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("tasks per worker: %d, %d", per[0].Load(), per[1].Load())
	if st := j.Stats(); st.Gets != n {
		t.Fatalf("gets = %d, want %d", st.Gets, n)
	}
}
