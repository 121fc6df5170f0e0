//go:build linux

package fuzz_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/shmkit/shmkit/shm"
)

// What every target asserts, in miniature: bytes a peer could have left
// behind are either refused with a sentinel error or yield a valid value,
// never a panic. Here, a file that is not a segment at all.
func Example() {
	f, err := os.CreateTemp("", "not-a-segment")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.Write(make([]byte, 8192)) // zeros: no magic, no checksum
	_, err = shm.OpenFile(f)
	fmt.Println(errors.Is(err, shm.ErrCorrupt))
	// Output: true
}
