package sem_test

import (
	"context"
	"os"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/sem"
)

// roleSleepOn blocks on the object named by $KIND until it is killed.
func roleSleepOn(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	switch os.Getenv("KIND") {
	case "mutex":
		mu, err := sem.LookupMutex(seg, "x")
		if err != nil {
			return err
		}
		return mu.Lock(ctx)
	case "semaphore":
		s, err := sem.LookupSemaphore(seg, "x")
		if err != nil {
			return err
		}
		return s.Acquire(ctx)
	case "event":
		e, err := sem.LookupEvent(seg, "x")
		if err != nil {
			return err
		}
		return e.Wait(ctx)
	case "cond":
		c, err := sem.LookupCond(seg, "x")
		if err != nil {
			return err
		}
		mu, err := sem.LookupMutex(seg, "cmu")
		if err != nil {
			return err
		}
		if err := mu.Lock(ctx); err != nil {
			return err
		}
		return c.Wait(ctx, mu)
	}
	return nil
}

// TestDeadSleeperReclaimed: a process killed asleep on a Mutex, Semaphore,
// Event or Cond leaves its announcement behind; the first wake that finds
// nobody has it cleared, and the wakers make no syscall again. On main the
// waiter count stayed raised, and every Release or Unlock made a
// FUTEX_WAKE.
func TestDeadSleeperReclaimed(t *testing.T) {
	for _, kind := range []string{"mutex", "semaphore", "event", "cond"} {
		t.Run(kind, func(t *testing.T) {
			seg, name := newSeg(t)
			ctx := testutil.Context(t)
			var obj any
			var wake func() // the operation whose wakeups we count
			switch kind {
			case "mutex":
				mu := must(sem.NewMutex(seg, "x"))
				must(0, mu.Lock(ctx))
				obj = mu
				wake = func() { mu.Unlock(); mu.Lock(ctx) }
			case "semaphore":
				s := must(sem.NewSemaphore(seg, "x", 0, 0))
				obj = s
				wake = func() { s.Release(); s.TryAcquire() }
			case "event":
				e := must(sem.NewEvent(seg, "x"))
				obj = e
				wake = func() { e.Set(); e.Clear() }
			case "cond":
				c := must(sem.NewCond(seg, "x"))
				must(sem.NewMutex(seg, "cmu"))
				obj = c
				wake = c.Signal
			}
			ec := sem.EventCountOf(obj)
			child := testutil.Spawn(t, "sleep-on", testutil.Env("SEG", name), testutil.Env("KIND", kind))
			testutil.AwaitSleeper(t, ec.Waiting)
			if err := child.Kill(); err != nil {
				t.Fatal(err)
			}
			before := ec.Wakes()
			for i := 0; i < 1000; i++ {
				wake()
			}
			if d := ec.Wakes() - before; d > 1 {
				t.Errorf("%d FUTEX_WAKE calls in 1000 wakes after the only sleeper died", d)
			}
			if ec.Waiting() || ec.Reclaimed() != 1 {
				t.Errorf("announcement left: waiting %v, reclaimed %d", ec.Waiting(), ec.Reclaimed())
			}
			if kind == "mutex" {
				obj.(*sem.Mutex).Unlock()
			}
		})
	}
}
