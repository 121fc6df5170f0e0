package sem_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/sem"
	"github.com/shmkit/shmkit/shm"
)

// stressDuration is how long each stress configuration runs: a few seconds
// by default (CI), longer with SHMKIT_STRESS=<duration>.
func stressDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SHMKIT_STRESS")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

const (
	stressProcs   = 8
	stressWorkers = 2 // goroutines per process: exercises the one-sleeper gate
	stressPermits = 2
)

// roleStress hammers the mutex, the semaphore and the event until the
// deadline and reports its progress counts in its row of "progress".
func roleStress(ctx context.Context) error {
	seg, err := openSeg()
	if err != nil {
		return err
	}
	defer seg.Close()
	id := envInt("ID")
	dur, _ := time.ParseDuration(os.Getenv("DUR"))
	mu := must(sem.LookupMutex(seg, "mu"))
	s := must(sem.LookupSemaphore(seg, "s"))
	ev := must(sem.LookupEvent(seg, "ev"))
	total := must(shm.LookupValue[int64](seg, "total"))
	inside := must(shm.LookupValue[int64](seg, "inside"))
	progress := must(shm.LookupArray[[3]int64](seg, "progress"))
	end := time.Now().Add(dur)
	var mu0 sync.Mutex
	var counts [3]int64
	var wg sync.WaitGroup
	errs := make(chan error, stressWorkers)
	for w := 0; w < stressWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c [3]int64
			defer func() {
				mu0.Lock()
				for i := range c {
					counts[i] += c[i]
				}
				mu0.Unlock()
			}()
			for i := 0; time.Now().Before(end); i++ {
				// A lost wakeup shows up as one of these deadlines.
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if err := mu.Lock(wctx); err != nil {
					cancel()
					errs <- fmt.Errorf("mutex: %w", err)
					return
				}
				total.Store(total.Load() + 1)
				mu.Unlock()
				c[0]++
				if err := s.Acquire(wctx); err != nil {
					cancel()
					errs <- fmt.Errorf("semaphore: %w", err)
					return
				}
				if n := inside.Add(1); n > stressPermits {
					cancel()
					errs <- fmt.Errorf("%d inside a semaphore of %d", n, stressPermits)
					return
				}
				inside.Add(-1)
				s.Release()
				c[1]++
				if i%16 == 0 {
					if err := ev.Wait(wctx); err != nil {
						cancel()
						errs <- fmt.Errorf("event: %w", err)
						return
					}
					c[2]++
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return progress.Store(id, counts)
}

func TestStressLostWakeups(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run("GOMAXPROCS="+strconv.Itoa(procs), func(t *testing.T) { stress(t, procs) })
	}
}

func stress(t *testing.T, gomaxprocs int) {
	seg, name := newSeg(t)
	must(sem.NewMutex(seg, "mu"))
	must(sem.NewSemaphore(seg, "s", stressPermits, stressPermits))
	ev := must(sem.NewEvent(seg, "ev"))
	total := must(shm.NewValue[int64](seg, "total"))
	must(shm.NewValue[int64](seg, "inside"))
	progress := must(shm.NewArray[[3]int64](seg, "progress", stressProcs))
	ctx := testutil.Context(t)
	dur := stressDuration()
	var cs []*testutil.Child
	for i := 0; i < stressProcs; i++ {
		cs = append(cs, testutil.Spawn(t, "stress", testutil.GOMAXPROCS(gomaxprocs),
			testutil.Env("SEG", name), testutil.Env("ID", strconv.Itoa(i)), testutil.Env("DUR", dur.String())))
	}
	// Toggle the event until every child is done, so waiters keep going to
	// sleep and being woken.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range cs {
			for !c.Exited() {
				ev.Set()
				time.Sleep(200 * time.Microsecond)
				ev.Clear()
				time.Sleep(200 * time.Microsecond)
			}
		}
		ev.Set()
	}()
	for i, c := range cs {
		if err := c.Wait(ctx); err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	<-done
	if t.Failed() {
		return
	}
	var sum int64
	for i := 0; i < stressProcs; i++ {
		p := must(progress.Load(i))
		if p[0] == 0 || p[1] == 0 || p[2] == 0 {
			t.Errorf("process %d made no progress on some primitive: mutex %d, semaphore %d, event %d", i, p[0], p[1], p[2])
		}
		sum += p[0]
	}
	if got := total.Load(); got != sum {
		t.Errorf("mutex-protected total %d, sum of processes %d", got, sum)
	}
	t.Logf("%v × %d processes × %d goroutines: %d locked increments", dur, stressProcs, stressWorkers, sum)
}
