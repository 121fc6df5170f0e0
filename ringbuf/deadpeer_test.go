package ringbuf

// Peers that die or scribble must not take the others down or slow them:
// a sleeper killed asleep is reclaimed (wakers make no syscalls again), a
// truncated named queue gives ErrCorrupt instead of SIGBUS, and MPMC stats
// balance after any kills. Each test failed on main before the event count
// and the fault guard (e7655af).

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

func init() {
	// dead-sleeper opens the queue and blocks: in Get on an empty queue,
	// or (DSIDE=put) in Put on a queue it filled. The test kills it there.
	roles["dead-sleeper"] = func(ctx context.Context) error {
		q, err := Open(testutil.Getenv("DQ"))
		if err != nil {
			return err
		}
		q.SetSpin(-1)
		if os.Getenv("DSIDE") == "put" {
			for q.TryPut(make([]byte, 8)) == nil {
			}
			return q.Put(ctx, make([]byte, 8))
		}
		_, err = q.Get(ctx)
		return err
	}
	// truncated puts a message, waits for the parent to truncate the
	// queue's file, and expects ErrCorrupt (not SIGBUS) from every call.
	roles["truncated"] = func(ctx context.Context) error {
		q, err := Open(testutil.Getenv("DQ"))
		if err != nil {
			return err
		}
		defer q.Close()
		if err := q.Put(ctx, []byte("before")); err != nil {
			return err
		}
		testutil.Signal("open")
		if _, err := testutil.Recv(ctx); err != nil {
			return err
		}
		for name, call := range map[string]func() error{
			"Put":    func() error { return q.Put(ctx, []byte("after truncation")) },
			"Get":    func() error { _, err := q.Get(ctx); return err },
			"TryPut": func() error { return q.TryPut([]byte("x")) },
		} {
			if err := call(); !errors.Is(err, ErrCorrupt) {
				return errors.New(name + " after truncation: " + errString(err))
			}
		}
		if st := q.Stats(); st.Puts != 0 {
			return errors.New("Stats of a truncated queue not zero")
		}
		return nil
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestDeadSleeperReclaimed: after a consumer (or producer) is SIGKILLed
// asleep, a stream between the survivors makes at most one FUTEX_WAKE (the
// one that finds nobody and reclaims the dead one's announcement), where
// main made one per message.
func TestDeadSleeperReclaimed(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		for _, side := range []string{"get", "put"} {
			t.Run(side, func(t *testing.T) {
				ctx := testutil.Context(t)
				name := testutil.Name(t)
				q, err := Create(name, Options{Mode: mode, Capacity: 4096, MaxMessage: 16, Spin: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer Unlink(name)
				defer q.Close()
				c := testutil.Spawn(t, "dead-sleeper", testutil.Env("DQ", name), testutil.Env("DSIDE", side))
				ec := q.c.notEmpty
				if side == "put" {
					ec = q.c.notFull
				}
				testutil.AwaitSleeper(t, ec.Waiting)
				if err := c.Kill(); err != nil {
					t.Fatal(err)
				}
				before := q.Stats().Wakeups
				buf := make([]byte, 16)
				for i := 0; i < 1000; i++ {
					if side == "get" {
						if err := q.Put(ctx, buf[:8]); err != nil {
							t.Fatal(err)
						}
						if _, err := q.GetInto(ctx, buf); err != nil {
							t.Fatal(err)
						}
					} else {
						if _, err := q.GetInto(ctx, buf); err != nil {
							t.Fatal(err)
						}
						if err := q.Put(ctx, buf[:8]); err != nil {
							t.Fatal(err)
						}
					}
				}
				if d := q.Stats().Wakeups - before; d > 1 {
					t.Errorf("%d FUTEX_WAKE calls in 1000 round trips after the sleeper died", d)
				}
				if ec.Waiting() || ec.Reclaimed() != 1 {
					t.Errorf("announcement left: waiting %v, reclaimed %d", ec.Waiting(), ec.Reclaimed())
				}
			})
		}
	})
}

// TestTruncatedQueue: a same-user process truncates a named queue's file
// under a process that uses it; that process gets ErrCorrupt from its
// calls and lives on, and so does this one.
func TestTruncatedQueue(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		ctx := testutil.Context(t)
		name := testutil.Name(t)
		q, err := Create(name, Options{Mode: mode, Capacity: 1 << 16, MaxMessage: 64})
		if err != nil {
			t.Fatal(err)
		}
		defer Unlink(name)
		defer q.Close()
		c := testutil.Spawn(t, "truncated", testutil.Env("DQ", name))
		if err := c.Await(ctx, "open"); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(shm.Path(name), 4096); err != nil {
			t.Fatal(err)
		}
		c.Send("go")
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("child: %v", err)
		}
		if _, err := q.TryGet(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("TryGet here after truncation = %v, want ErrCorrupt", err)
		}
		if err := q.TryPut([]byte("x")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("TryPut on the broken handle = %v, want ErrCorrupt", err)
		}
	})
}

func init() {
	// churn puts (DSIDE=put) or gets messages until it is killed.
	roles["churn"] = func(ctx context.Context) error {
		q, err := Open(testutil.Getenv("DQ"))
		if err != nil {
			return err
		}
		testutil.Signal("up")
		buf := make([]byte, 64)
		for ctx.Err() == nil {
			if os.Getenv("DSIDE") == "put" {
				q.Put(ctx, buf[:1+len(buf)/2])
			} else {
				q.GetInto(ctx, buf)
			}
		}
		return nil
	}
}

// TestStatsBalanceUnderKills: producers and consumers of an MPMC queue are
// SIGKILLed at random moments, 40 times; once the survivors have recovered
// what the dead left, Puts = Gets + DeadConsumerLosses + Len exactly. On
// main the per-process counters drifted by the kills that fell between a
// publish and its count.
func TestStatsBalanceUnderKills(t *testing.T) {
	ctx := testutil.Context(t)
	name := testutil.Name(t)
	q, err := Create(name, Options{Mode: MPMC, Capacity: 64 * 128, MaxMessage: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer Unlink(name)
	defer q.Close()
	spawn := func(side string) *testutil.Child {
		c := testutil.Spawn(t, "churn", testutil.Env("DQ", name), testutil.Env("DSIDE", side))
		if err := c.Await(ctx, "up"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	sides := []string{"put", "put", "get", "get"}
	var kids []*testutil.Child
	for _, s := range sides {
		kids = append(kids, spawn(s))
	}
	for k := 0; k < 40; k++ {
		time.Sleep(time.Duration(1+k%7) * time.Millisecond)
		i := k % len(kids)
		if err := kids[i].Kill(); err != nil {
			t.Fatal(err)
		}
		kids[i] = spawn(sides[i])
	}
	for _, c := range kids {
		c.Kill()
	}
	// Recover what the dead left: a blocking Get waits out a dead
	// producer's claim (then skips it), a blocking Put frees a dead
	// consumer's slot, until nothing is left.
	buf := make([]byte, 64)
	for {
		gctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := q.GetInto(gctx, buf)
		cancel()
		if err != nil {
			break
		}
	}
	for i := 0; i < q.Cap(); i++ {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := q.Put(pctx, buf[:1])
		cancel()
		if err != nil {
			t.Fatalf("put %d after the kills: %v\n%s", i, err, xpDiag(q))
		}
	}
	st := q.Stats()
	if st.Puts != st.Gets+st.DeadConsumerLosses+uint64(st.Len) || st.Len != q.Cap() {
		t.Fatalf("puts %d != gets %d + dead-consumer losses %d + len %d (dead producer slots %d)",
			st.Puts, st.Gets, st.DeadConsumerLosses, st.Len, st.DeadProducerSlots)
	}
	t.Logf("%d puts, %d gets, %d lost with dead consumers, %d dead producer slots", st.Puts, st.Gets, st.DeadConsumerLosses, st.DeadProducerSlots)
}
