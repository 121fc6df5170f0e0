package ringbuf

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

// TestMPMCManyHandlesNoStall: producers and consumers, one handle each, in
// one process; every message is delivered within a 3 s per-Get deadline.
// (It did not reproduce the stall that chained wakeups fix; the bench's
// TestManyProducersConsumers did, in about 1 run of 6, and guards it.)
func TestMPMCManyHandlesNoStall(t *testing.T) {
	for round := 0; round < 30; round++ {
		for _, pc := range [][2]int{{4, 4}, {3, 2}, {1, 3}} {
			mpmcStallRound(t, pc[0], pc[1])
		}
	}
}

func mpmcStallRound(t *testing.T, P, C int) {
	q := newQ(t, Options{Mode: MPMC, Capacity: 1 << 20, MaxMessage: 256})
	f, _ := q.File()
	defer f.Close()
	const per = 400
	total := int64(P * per)
	var got atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	handles := []*Queue{}
	for i := 0; i < P+C; i++ {
		h, err := OpenFile(f)
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
		defer h.Close()
	}
	for p := 0; p < P; p++ {
		h := handles[p]
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, 256)
			for i := 0; i < per; i++ {
				if err := h.Put(ctx, msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for c := 0; c < C; c++ {
		h := handles[P+c]
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256)
			for got.Load() < total {
				gctx, gcancel := context.WithTimeout(ctx, 3*time.Second)
				_, err := h.GetInto(gctx, buf)
				gcancel()
				if err != nil {
					if got.Load() >= total {
						return
					}
					t.Errorf("consumer stalled: %v; got %d of %d\n%s", err, got.Load(), total, xpDiag(q))
					cancel()
					return
				}
				got.Add(1)
			}
		}()
	}
	// Consumers past the last message are waiting: release them.
	for got.Load() < total && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	q.Shutdown()
	wg.Wait()
}

func init() {
	// stall-consumers: C goroutines, one handle each, take messages until
	// each has seen P one-byte end markers (a message of length 1).
	roles["stall-consumers"] = func(ctx context.Context) error {
		f := testutilInherited(0)
		var P, C int
		fmt.Sscan(os.Getenv("PC"), &P, &C)
		var wg sync.WaitGroup
		errs := make(chan error, C)
		var qs []*Queue
		for c := 0; c < C; c++ {
			h, err := OpenFile(f)
			if err != nil {
				return err
			}
			qs = append(qs, h)
			defer h.Close()
		}
		for c := 0; c < C; c++ {
			h := qs[c]
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 256)
				for markers := 0; markers < 3*P; {
					gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					n, err := h.GetInto(gctx, buf)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("consumer stalled: %v\n%s", err, xpDiag(h))
						return
					}
					if n == 1 {
						markers++
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
}

// TestMPMCCrossProcessNoStall: the same across processes, in phases with
// idle gaps (consumers asleep) and per-consumer quotas of end markers, as
// the bench runs them; each consumer Get has a 5 s deadline.
func TestMPMCCrossProcessNoStall(t *testing.T) {
	for round := 0; round < 20; round++ {
		for _, pc := range [][2]int{{4, 4}, {3, 2}, {1, 3}} {
			P, C := pc[0], pc[1]
			q := newQ(t, Options{Mode: MPMC, Capacity: 1 << 20, MaxMessage: 256})
			f, _ := q.File()
			c := spawnWithFile(t, "stall-consumers", f, fmt.Sprintf("%d %d", P, C))
			f.Close()
			ctx := context.Background()
			var wg sync.WaitGroup
			for p := 0; p < P; p++ {
				h, _ := OpenFile(mustFile(t, q))
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer h.Close()
					msg := make([]byte, 256)
					for phase := 0; phase < 3; phase++ {
						time.Sleep(20 * time.Millisecond) // consumers go to sleep
						for i := 0; i < 200; i++ {
							h.Put(ctx, msg)
						}
						for i := 0; i < C; i++ {
							h.Put(ctx, msg[:1])
						}
					}
				}()
			}
			wg.Wait()
			if err := c.Wait(ctx); err != nil {
				t.Fatalf("round %d %dx%d: %v", round, P, C, err)
			}
		}
	}
}

func testutilInherited(i int) *os.File { return testutil.InheritedFile(i) }

func mustFile(t *testing.T, q *Queue) *os.File {
	f, err := q.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func spawnWithFile(t *testing.T, role string, f *os.File, pc string) *testutil.Child {
	return testutil.Spawn(t, role, testutil.Files(f), testutil.Env("PC", pc))
}
