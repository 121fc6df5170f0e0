package sem_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmkit/shmkit/sem"
	"github.com/shmkit/shmkit/shm"
)

// A Mutex guarding a counter. Another process would shm.Open the segment
// and sem.LookupMutex / shm.LookupValue the same names.
func ExampleMutex() {
	seg, err := shm.CreateAnonymous(1 << 16)
	if err != nil {
		panic(err)
	}
	defer seg.Close()
	mu, _ := sem.NewMutex(seg, "mu")
	hits, _ := shm.NewValue[int64](seg, "hits")

	ctx := context.Background()
	if err := mu.Lock(ctx); errors.Is(err, sem.ErrOwnerDead) {
		// The previous holder died mid-update: repair, then declare it.
		hits.Store(0)
		mu.MarkConsistent()
	} else if err != nil {
		panic(err)
	}
	hits.Store(hits.Load() + 1)
	mu.Unlock()
	fmt.Println(hits.Load())
	// Output: 1
}

func ExampleSemaphore() {
	seg, _ := shm.CreateAnonymous(1 << 16)
	defer seg.Close()
	slots, _ := sem.NewSemaphore(seg, "slots", 2, 2) // bounded at 2
	fmt.Println(slots.TryAcquire(), slots.TryAcquire(), slots.TryAcquire())
	slots.Release()
	slots.Release()
	fmt.Println(slots.Release())
	// Output:
	// true true false
	// sem: semaphore released too many times
}

func ExampleEvent() {
	seg, _ := shm.CreateAnonymous(1 << 16)
	defer seg.Close()
	ready, _ := sem.NewEvent(seg, "ready")
	go func() {
		time.Sleep(10 * time.Millisecond)
		ready.Set()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fmt.Println(ready.Wait(ctx), ready.IsSet())
	// Output: <nil> true
}

func ExampleBarrier() {
	seg, _ := shm.CreateAnonymous(1 << 16)
	defer seg.Close()
	b, _ := sem.NewBarrier(seg, "start", 2)
	done := make(chan int)
	go func() {
		i, _ := b.Wait(context.Background())
		done <- i
	}()
	j, _ := b.Wait(context.Background())
	i := <-done
	fmt.Println(i+j, b.Parties())
	// Output: 1 2
}

func ExampleCond() {
	seg, _ := shm.CreateAnonymous(1 << 16)
	defer seg.Close()
	mu, _ := sem.NewMutex(seg, "mu")
	c, _ := sem.NewCond(seg, "c")
	v, _ := shm.NewValue[int64](seg, "v")
	ctx := context.Background()
	go func() {
		mu.Lock(ctx)
		v.Store(42)
		c.Signal()
		mu.Unlock()
	}()
	mu.Lock(ctx)
	for v.Load() == 0 {
		c.Wait(ctx, mu)
	}
	fmt.Println(v.Load())
	mu.Unlock()
	// Output: 42
}
