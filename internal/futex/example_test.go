//go:build linux

package futex_test

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
)

func Example() {
	var ready atomic.Uint32
	go func() {
		ready.Store(1)                // publish first,
		futex.Wake(&ready, futex.All) // then wake
	}()
	for ready.Load() == 0 { // wakeups may be spurious: loop on the value
		futex.Wait(&ready, 0, time.Now().Add(time.Second))
	}
	fmt.Println("ready")
	// Output: ready
}
