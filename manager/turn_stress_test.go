package manager

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watchdog dumps every goroutine and fails if progress stops moving.
func watchdog(t *testing.T, progress *atomic.Int64, stall time.Duration) (stop func()) {
	done := make(chan struct{})
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		last, since := progress.Load(), time.Now()
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			if p := progress.Load(); p != last {
				last, since = p, time.Now()
				continue
			}
			if time.Since(since) > stall {
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
				panic(fmt.Sprintf("no progress for %v (progress %d)", stall, last))
			}
		}
	}()
	return func() { close(done); <-fin }
}

func shortCtx(r *rand.Rand) (context.Context, context.CancelFunc) {
	switch r.IntN(4) {
	case 0:
		return context.WithTimeout(context.Background(), time.Duration(r.IntN(300))*time.Microsecond)
	case 1:
		return context.WithTimeout(context.Background(), time.Duration(r.IntN(3000))*time.Microsecond)
	case 2:
		ctx, cancel := context.WithCancel(context.Background())
		d := time.Duration(r.IntN(2000)) * time.Microsecond
		tm := time.AfterFunc(d, cancel)
		return ctx, func() { tm.Stop(); cancel() }
	}
	return context.WithTimeout(context.Background(), 50*time.Millisecond)
}

// TestTurnStress mixes blocking Gets with short ctxs, Acquires with
// cancels, Batches and Dict ops on one client, and checks nothing is lost,
// duplicated, nor fails with ErrClosed.
func TestTurnStress(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		c2 := dial(t, addr) // a second connection to check the lock and queue
		bg := context.Background()
		q, err := c.Queue(bg, "q", 0)
		if err != nil {
			t.Fatal(err)
		}
		var progress atomic.Int64
		stop := watchdog(t, &progress, 20*time.Second)
		defer stop()

		const putters, perPutter = 3, 300
		var got sync.Map // item -> count
		var gotN atomic.Int64
		record := func(v int) {
			n, _ := got.LoadOrStore(v, new(atomic.Int32))
			if n.(*atomic.Int32).Add(1) > 1 {
				t.Errorf("item %d got twice", v)
			}
			gotN.Add(1)
		}
		bad := func(what string, err error) {
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", what, err)
			}
		}
		var wg sync.WaitGroup
		var stopGet atomic.Bool
		// Getters, short ctxs.
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, 1))
				for !stopGet.Load() {
					ctx, cancel := shortCtx(r)
					var v int
					err := q.Get(ctx, &v)
					cancel()
					progress.Add(1)
					if err == nil {
						record(v)
					} else {
						bad("Get", err)
					}
				}
			}(uint64(g))
		}
		// Putters, background ctx.
		var pw sync.WaitGroup
		for p := 0; p < putters; p++ {
			pw.Add(1)
			go func(p int) {
				defer pw.Done()
				for i := 0; i < perPutter; i++ {
					if err := q.Put(bg, p*perPutter+i); err != nil {
						t.Errorf("Put: %v", err)
						return
					}
					progress.Add(1)
					if i%16 == 0 {
						time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
					}
				}
			}(p)
		}
		// Lockers: Acquire with cancels; mutual exclusion on one connection.
		var inCS atomic.Int32
		var stopOther atomic.Bool
		l := c.Lock("l")
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, 2))
				for !stopOther.Load() {
					ctx, cancel := shortCtx(r)
					err := l.Acquire(ctx)
					cancel()
					progress.Add(1)
					if err != nil {
						bad("Acquire", err)
						continue
					}
					if inCS.Add(1) != 1 {
						t.Errorf("two holders")
					}
					time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
					inCS.Add(-1)
					if err := l.Release(bg); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
			}(uint64(g + 10))
		}
		// Batches with sometimes-short ctxs; Adds counted when the batch completes.
		var batchAdds atomic.Int64
		var batchMaybe atomic.Int64
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(seed, 3))
				for !stopOther.Load() {
					b := c.Batch()
					n := 1 + r.IntN(12)
					ps := make([]*Pending, n)
					for i := range ps {
						ps[i] = b.Dict("bd").Add("n", 1)
					}
					b.Dict("bd").Get("n")
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if r.IntN(2) == 0 {
						ctx, cancel = shortCtx(r)
					}
					err := b.Send(ctx)
					cancel()
					progress.Add(1)
					if err == nil {
						batchAdds.Add(int64(n))
						for _, p := range ps {
							if p.Err() != nil {
								t.Errorf("batch item: %v", p.Err())
							}
						}
					} else {
						bad("Batch", err)
						batchMaybe.Add(int64(n))
					}
				}
			}(uint64(g + 20))
		}
		// Dict ops, background ctx.
		var adds atomic.Int64
		for g := 0; g < 3; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				d := c.Dict("d")
				k := "k" + strconv.Itoa(g)
				for i := 0; !stopOther.Load(); i++ {
					if err := d.Set(bg, k, i); err != nil {
						t.Errorf("Set: %v", err)
						return
					}
					var v int
					if err := d.Get(bg, k, &v); err != nil || v != i {
						t.Errorf("Get %s = %d, %v; want %d", k, v, err, i)
						return
					}
					if _, err := d.Add(bg, "n", 1); err != nil {
						t.Errorf("Add: %v", err)
						return
					}
					adds.Add(1)
					progress.Add(1)
				}
			}(g)
		}
		pw.Wait()
		// Let the getters drain most of it.
		deadline := time.Now().Add(10 * time.Second)
		for gotN.Load() < putters*perPutter*9/10 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		stopGet.Store(true)
		stopOther.Store(true)
		wg.Wait()
		// Undos are asynchronous: wait for the queue to settle.
		time.Sleep(100 * time.Millisecond)
		for {
			var v int
			err := q.TryGet(bg, &v)
			if err != nil {
				break
			}
			record(v)
		}
		if n := gotN.Load(); n != putters*perPutter {
			missing := 0
			for i := 0; i < putters*perPutter; i++ {
				if _, ok := got.Load(i); !ok {
					missing++
				}
			}
			t.Errorf("got %d items, want %d (missing %d)", n, putters*perPutter, missing)
		}
		var n int64
		if err := c.Dict("d").Get(bg, "n", &n); err != nil || n != adds.Load() {
			t.Errorf("d.n = %d, %v; want %d", n, err, adds.Load())
		}
		if err := c.Dict("bd").Get(bg, "n", &n); err != nil || n < batchAdds.Load() || n > batchAdds.Load()+batchMaybe.Load() {
			t.Errorf("bd.n = %d, %v; want %d..%d", n, err, batchAdds.Load(), batchAdds.Load()+batchMaybe.Load())
		}
		// The lock is free (no leaked acquire).
		time.Sleep(50 * time.Millisecond)
		if ok, err := c2.Lock("l").TryAcquire(bg); !ok || err != nil {
			t.Errorf("lock leaked: TryAcquire from another client = %v, %v", ok, err)
		} else {
			c2.Lock("l").Release(bg)
		}
	})
}

// TestTurnClose closes the client while many calls read and wait; every
// call returns, with ErrClosed or its ctx's error, and nothing leaks.
func TestTurnClose(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		for round := 0; round < 10; round++ {
			c := dial(t, addr)
			bg := context.Background()
			q, err := c.Queue(bg, "q"+strconv.Itoa(round), 0)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var closed atomic.Bool
			check := func(what string, err error) {
				if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
					return
				}
				if errors.Is(err, ErrClosed) && closed.Load() {
					return
				}
				t.Errorf("%s: %v (closed %v)", what, err, closed.Load())
			}
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), uint64(round)))
					for i := 0; ; i++ {
						err := mixedOp(g, i, r, c, q)
						check("op", err)
						if err != nil && errors.Is(err, ErrClosed) {
							return
						}
					}
				}(g)
			}
			time.Sleep(time.Duration(1+round) * time.Millisecond)
			closed.Store(true)
			c.Close()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
				t.Fatal("calls did not return after Close")
			}
		}
		runtime.GC()
	})
}

// mixedOp is goroutine g's i-th call of the close tests: a Get with a
// short ctx, a Put, a Batch with a short ctx, or an Add, by g.
func mixedOp(g, i int, r *rand.Rand, c *Client, q *Queue) error {
	bg := context.Background()
	switch g % 4 {
	case 0:
		ctx, cancel := shortCtx(r)
		defer cancel()
		var v int
		return q.Get(ctx, &v)
	case 1:
		return q.Put(bg, i)
	case 2:
		b := c.Batch()
		b.Dict("d").Add("n", 1)
		b.Dict("d").Get("n")
		ctx, cancel := shortCtx(r)
		defer cancel()
		return b.Send(ctx)
	}
	_, err := c.Dict("d").Add(bg, "n", 1)
	return err
}
