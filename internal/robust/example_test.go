//go:build linux

package robust_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/internal/robust"
)

type host map[uint32]bool // dead tokens

func (h host) Alive(t uint32) bool { return !h[t] }

// Two participants share a lock word; the first "dies" holding it, and
// the second inherits it with ErrOwnerDead.
func Example() {
	// In real use: a word and an event count in a shm.Segment.
	words := make([]uint64, 1+futex.Size(2)/8)
	word := (*atomic.Uint32)(unsafe.Pointer(&words[0]))
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[1])), futex.Size(2))
	dead := host{}
	ecA, _ := futex.NewEventCount(mem, 2, 0, 1, dead, nil)
	ecB, _ := futex.NewEventCount(mem, 2, 1, 2, dead, nil)
	a := robust.New(word, ecA, 1, dead.Alive, nil)
	b := robust.New(word, ecB, 2, dead.Alive, nil)

	a.Lock(context.Background())
	dead[1] = true // a's process is gone; the kernel dropped its OFD lock

	err := b.Lock(context.Background())
	fmt.Println(errors.Is(err, robust.ErrOwnerDead))
	b.MarkConsistent()
	b.Unlock()
	fmt.Println(b.TryLock())
	// Output:
	// true
	// <nil>
}
