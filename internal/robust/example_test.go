//go:build linux

package robust_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/robust"
)

// Two participants share a lock word; the first "dies" holding it, and
// the second inherits it with ErrOwnerDead.
func Example() {
	var word atomic.Uint32 // in real use: a word in a shm.Segment
	dead := map[uint32]bool{}
	alive := func(t uint32) bool { return !dead[t] }
	a := robust.New(&word, 1, alive, nil)
	b := robust.New(&word, 2, alive, nil)

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
