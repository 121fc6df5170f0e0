package ringbuf

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

func init() {
	// named-sink receives a count from its stdin, then that many messages
	// from the named queue, and says done; -1 ends it.
	roles["named-sink"] = func(ctx context.Context) error {
		q, err := Open(testutil.Getenv("DQ"))
		if err != nil {
			return err
		}
		defer q.Close()
		buf := make([]byte, q.MaxMessage())
		testutil.Signal("ready")
		for {
			line, err := testutil.Recv(ctx)
			if err != nil {
				return err
			}
			n, _ := strconv.Atoi(line)
			if n < 0 {
				return nil
			}
			for i := 0; i < n; i++ {
				if _, err := q.GetInto(ctx, buf); err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
			}
			testutil.Signal("done")
		}
	}
}

// BenchmarkDeadSleepers: a 64-byte stream from this process to a child,
// before and after a consumer and a producer of the same queue were
// SIGKILLed asleep in it, in one run. "after" should match "before": the
// dead sleepers' announcements are reclaimed by the first wakeup that
// finds nobody (on main, every message then cost a FUTEX_WAKE).
func BenchmarkDeadSleepers(b *testing.B) {
	for _, mode := range []Mode{SPSC, MPMC} {
		b.Run(mode.String(), func(b *testing.B) {
			ctx := context.Background()
			name := testutil.Name(b)
			o := Options{Mode: mode, Capacity: 1 << 16, MaxMessage: 64}
			q, err := Create(name, o)
			if err != nil {
				b.Fatal(err)
			}
			defer Unlink(name)
			defer q.Close()
			stream := func(b *testing.B) {
				p, err := Open(name)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				c := testutil.Spawn(b, "named-sink", testutil.Env("DQ", name))
				if err := c.Await(ctx, "ready"); err != nil {
					b.Fatal(err)
				}
				msg := make([]byte, 64)
				b.SetBytes(64)
				b.ReportAllocs()
				b.ResetTimer()
				c.Send(strconv.Itoa(b.N))
				for i := 0; i < b.N; i++ {
					if err := p.Put(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.Await(ctx, "done"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Send("-1")
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("before", stream)
			// A consumer asleep on the empty queue, and a producer asleep
			// on the full one, both killed there.
			for _, side := range []string{"get", "put"} {
				c := testutil.Spawn(b, "dead-sleeper", testutil.Env("DQ", name), testutil.Env("DSIDE", side))
				ec := q.c.notEmpty
				if side == "put" {
					ec = q.c.notFull
				}
				testutil.AwaitSleeper(b, ec.Waiting)
				if err := c.Kill(); err != nil {
					b.Fatal(err)
				}
			}
			for {
				if _, err := q.TryGet(); err != nil {
					break // drained what the dead producer put
				}
			}
			q.r.detach() // give the consumer side back to the sink
			b.Run("after", stream)
		})
	}
}

// BenchmarkFaultGuard: what catching memory faults costs a named queue's
// call, in one process (no peer to add noise): a 64-byte TryPut and
// TryGetInto per op, with the guard and without it.
func BenchmarkFaultGuard(b *testing.B) {
	for _, guard := range []bool{true, false} {
		b.Run(map[bool]string{true: "guarded", false: "unguarded"}[guard], func(b *testing.B) {
			name := testutil.Name(b)
			q, err := Create(name, Options{Mode: SPSC, Capacity: 1 << 16, MaxMessage: 64})
			if err != nil {
				b.Fatal(err)
			}
			defer Unlink(name)
			defer q.Close()
			q.guarded = guard
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.SetBytes(64)
			b.ReportAllocs()
			for b.Loop() {
				if err := q.TryPut(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := q.TryGetInto(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
