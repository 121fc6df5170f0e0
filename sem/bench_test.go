package sem_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/sem"
	"github.com/shmkit/shmkit/shm"
)

// BenchmarkUncontended compares shmkit's fast paths with their in-process
// counterparts in one run: each row is one lock+unlock, acquire+release or
// add, with no other party, so no syscall may happen.
func BenchmarkUncontended(b *testing.B) {
	seg, _ := newSeg(b)
	ctx := context.Background()
	mu := must(sem.NewMutex(seg, "mu"))
	rm := must(sem.NewRMutex(seg, "rm"))
	s := must(sem.NewSemaphore(seg, "s", 1, 0))
	v := must(shm.NewValue[int64](seg, "v"))
	var smu sync.Mutex
	var a atomic.Int64
	ch := make(chan struct{}, 1)

	cases := []struct {
		name string
		op   func()
	}{
		{"sync.Mutex", func() {
			smu.Lock()
			//lint:ignore SA2001 the benchmark measures the lock itself
			smu.Unlock()
		}},
		{"sem.Mutex", func() { mu.Lock(ctx); mu.Unlock() }},
		{"sem.RMutex", func() { rm.Lock(ctx); rm.Unlock() }},
		{"chan-semaphore", func() { ch <- struct{}{}; <-ch }},
		{"sem.Semaphore", func() { s.Acquire(ctx); s.Release() }},
		{"atomic.Int64.Add", func() { a.Add(1) }},
		{"shm.Value.Add", func() { v.Add(1) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.op()
			}
		})
	}
}

// BenchmarkContended runs Lock+Unlock from GOMAXPROCS goroutines of one
// process on one handle: the slow path, spinning and the one-sleeper gate.
func BenchmarkContended(b *testing.B) {
	seg, _ := newSeg(b)
	ctx := context.Background()
	mu := must(sem.NewMutex(seg, "mu"))
	var smu sync.Mutex
	b.Run("sync.Mutex", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				smu.Lock()
				//lint:ignore SA2001 the benchmark measures the lock itself
				smu.Unlock()
			}
		})
	})
	b.Run("sem.Mutex", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock(ctx)
				mu.Unlock()
			}
		})
	})
}

// BenchmarkDeadSleepers: a Semaphore hand-off (one goroutine releases, a
// goroutine of another attachment acquires) before and after a process
// was SIGKILLed asleep in Acquire on the same Semaphore, in one run.
// "after" should match "before": the dead sleeper's announcement is
// reclaimed by the first wakeup that finds nobody (on main, every Release
// then made a FUTEX_WAKE).
func BenchmarkDeadSleepers(b *testing.B) {
	seg, name := newSeg(b)
	s := must(sem.NewSemaphore(seg, "x", 0, 0))
	other := must(shm.Open(name)) // a second participant, as another process would be
	defer other.Close()
	t := must(sem.LookupSemaphore(other, "x"))
	ctx := context.Background()
	handOff := func(b *testing.B) {
		b.ReportAllocs()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < b.N; i++ {
				if err := t.Acquire(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		for i := 0; i < b.N; i++ {
			s.Release()
		}
		<-done
	}
	b.Run("before", handOff)
	child := testutil.Spawn(b, "sleep-on", testutil.Env("SEG", name), testutil.Env("KIND", "semaphore"))
	testutil.AwaitSleeper(b, sem.EventCountOf(s).Waiting)
	if err := child.Kill(); err != nil {
		b.Fatal(err)
	}
	b.Run("after", handOff)
}
