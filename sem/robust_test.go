package sem_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/sem"
	"github.com/shmkit/shmkit/shm"
)

// roleHoldLock takes the mutex, says so, and holds it until told to unlock.
func roleHoldLock(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	mu, err := sem.LookupMutex(seg, "mu")
	if err != nil {
		return err
	}
	if err := mu.Lock(ctx); err != nil {
		return err
	}
	testutil.Signal("locked")
	if msg, err := testutil.Recv(ctx); err != nil || msg != "unlock" {
		return fmt.Errorf("recv %q: %v", msg, err)
	}
	if err := mu.Unlock(); err != nil {
		return err
	}
	testutil.Signal("unlocked")
	return nil
}

// spawnHolder starts a child that takes the mutex "mu" of segment name and
// returns once it holds it.
func spawnHolder(t *testing.T, ctx context.Context, name string) *testutil.Child {
	t.Helper()
	c := testutil.Spawn(t, "hold-lock", testutil.Env("SEG", name))
	if err := c.Await(ctx, "locked"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMutexOwnerKilled kills a child holding the mutex, 200 times. The
// parent is either already asleep in Lock (even rounds) or arrives after
// the death (odd rounds); either way it must get ErrOwnerDead, repair, and
// go on with a usable lock.
func TestMutexOwnerKilled(t *testing.T) {
	rounds := 200
	if testing.Short() {
		rounds = 40
	}
	seg, name := newSeg(t)
	mu := must(sem.NewMutex(seg, "mu"))
	repaired := must(shm.NewValue[int64](seg, "repaired"))
	ctx := testutil.Context(t)
	var sleeping []time.Duration
	for r := 0; r < rounds; r++ {
		c := spawnHolder(t, ctx, name)
		var got error
		var killed time.Time
		if r%2 == 0 {
			done := make(chan error, 1)
			go func() { done <- mu.Lock(ctx) }()
			time.Sleep(2 * time.Millisecond) // let it reach the kernel
			killed = time.Now()
			if err := c.Kill(); err != nil {
				t.Fatal(err)
			}
			got = <-done
			sleeping = append(sleeping, time.Since(killed))
		} else {
			if err := c.Kill(); err != nil {
				t.Fatal(err)
			}
			got = mu.Lock(ctx)
		}
		if !errors.Is(got, sem.ErrOwnerDead) {
			t.Fatalf("round %d: Lock = %v, want ErrOwnerDead", r, got)
		}
		repaired.Add(1)
		if err := mu.MarkConsistent(); err != nil {
			t.Fatal(err)
		}
		if err := mu.Unlock(); err != nil {
			t.Fatal(err)
		}
		// The lock is healthy again: the fast path works.
		if err := mu.TryLock(); err != nil {
			t.Fatalf("round %d: TryLock after repair = %v", r, err)
		}
		mu.Unlock()
	}
	slices.Sort(sleeping)
	med, worst := sleeping[len(sleeping)/2], sleeping[len(sleeping)-1]
	t.Logf("%d rounds; a sleeping waiter learned of the death in median %v, worst %v", rounds, med, worst)
	if med > 100*time.Millisecond {
		t.Errorf("median detection %v, want within 100ms", med)
	}
}

// TestMutexStoppedOwnerIsAlive: a SIGSTOPped holder is slow, not dead.
func TestMutexStoppedOwnerIsAlive(t *testing.T) {
	seg, name := newSeg(t)
	mu := must(sem.NewMutex(seg, "mu"))
	ctx := testutil.Context(t)
	c := spawnHolder(t, ctx, name)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// Long enough for several liveness checks by a sleeping waiter.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := mu.Lock(wctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock while owner stopped = %v, want DeadlineExceeded", err)
	}
	if err := mu.TryLock(); !errors.Is(err, sem.ErrLocked) {
		t.Fatalf("TryLock while owner stopped = %v, want ErrLocked", err)
	}
	if err := c.Cont(); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("unlock"); err != nil {
		t.Fatal(err)
	}
	if err := mu.Lock(ctx); err != nil {
		t.Fatalf("Lock after owner unlocked = %v", err)
	}
	mu.Unlock()
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMutexNotRecoverable: unlocking an inherited lock without repair
// retires the lock for everyone.
func TestMutexNotRecoverable(t *testing.T) {
	seg, name := newSeg(t)
	mu := must(sem.NewMutex(seg, "mu"))
	ctx := testutil.Context(t)
	c := spawnHolder(t, ctx, name)
	c.Kill()
	if err := mu.Lock(ctx); !errors.Is(err, sem.ErrOwnerDead) {
		t.Fatalf("Lock = %v, want ErrOwnerDead", err)
	}
	if err := mu.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := mu.Lock(ctx); !errors.Is(err, sem.ErrNotRecoverable) {
		t.Fatalf("Lock = %v, want ErrNotRecoverable", err)
	}
	if err := mu.TryLock(); !errors.Is(err, sem.ErrNotRecoverable) {
		t.Fatalf("TryLock = %v, want ErrNotRecoverable", err)
	}
}
