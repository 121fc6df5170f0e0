//go:build linux

package futex_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
)

type alive struct{}

func (alive) Alive(uint32) bool { return true }

// A waiter sleeps until a flag is published; the waker publishes, then
// notifies. In real use the memory is in a shm.Segment and the two sides
// are different processes, each with its own participant slot.
func Example() {
	words := make([]uint64, futex.Size(2)/8+1)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[1])), futex.Size(2))
	flag := (*atomic.Uint32)(unsafe.Pointer(&words[0]))
	waiter, _ := futex.NewEventCount(mem, 2, 0, 1, alive{}, nil)
	waker, _ := futex.NewEventCount(mem, 2, 1, 2, alive{}, nil)

	go func() {
		time.Sleep(10 * time.Millisecond)
		flag.Store(1)   // publish first,
		waker.Notify(1) // then wake (no syscall unless someone is announced)
	}()
	err := waiter.Wait(context.Background(), time.Time{}, nil, func() bool { return flag.Load() == 1 })
	fmt.Println(err, flag.Load())
	// Output: <nil> 1
}
