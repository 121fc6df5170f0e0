//go:build linux

package sysx_test

import (
	"fmt"
	"os"

	"github.com/shmkit/shmkit/internal/sysx"
)

// An OFD lock held through one open file description is visible from
// another, even in the same process; the kernel drops it on close or death.
func ExampleByteLocked() {
	f, _ := os.CreateTemp("", "sysx")
	defer os.Remove(f.Name())
	defer f.Close()
	g, _ := os.Open(f.Name()) // a second open file description
	defer g.Close()

	ok, _ := sysx.LockByte(f, 1<<40)
	held, _ := sysx.ByteLocked(g, 1<<40)
	fmt.Println(ok, held)
	f.Close()
	held, _ = sysx.ByteLocked(g, 1<<40)
	fmt.Println(held)
	// Output:
	// true true
	// false
}

func ExampleStartTime() {
	a, _ := sysx.StartTime(os.Getpid())
	b, _ := sysx.SelfStartTime()
	fmt.Println(a == b && a > 0)
	// Output: true
}
