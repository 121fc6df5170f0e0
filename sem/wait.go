package sem

import (
	"context"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// sleep waits on word while it holds val, through gate, so that at most one
// goroutine per object and process sleeps in the kernel. The caller holds a
// pin on seg. It returns nil on a wakeup (possibly spurious),
// futex.ErrTimeout at limit, ctx's error, or shm.ErrClosed.
func sleep(ctx context.Context, seg *shm.Segment, gate *futex.Gate, word *atomic.Uint32, val uint32, limit time.Time) error {
	if err := gate.Enter(ctx); err != nil {
		return err
	}
	err := seg.Sleep(ctx, word, val, limit)
	gate.Leave()
	return err
}

// word returns the atomic uint32 at off in an object's memory. Objects are
// 64-byte aligned and off is a multiple of 4, within the object's size.
func word(mem []byte, off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

func word64(mem []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

// unsafeWords views b as n atomic words; b is 4-byte aligned and long
// enough (checked by the caller).
func unsafeWords(b []byte, n int) []atomic.Uint32 {
	return unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(&b[0])), n)
}
