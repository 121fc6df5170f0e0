//go:build !linux

package futex

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// Wait returns errors.ErrUnsupported: shared futexes are Linux-only.
func Wait(addr *atomic.Uint32, val uint32, deadline time.Time) error { return errors.ErrUnsupported }

func wait(addr *atomic.Uint32, val uint32, deadline time.Time, bits uint32) error {
	return errors.ErrUnsupported
}

// Wake returns errors.ErrUnsupported: shared futexes are Linux-only.
func Wake(addr *atomic.Uint32, n int) (int, error) { return 0, errors.ErrUnsupported }

func wakeBitset(addr *atomic.Uint32, n int, bits uint32) (int, error) {
	return 0, errors.ErrUnsupported
}

func yield() { runtime.Gosched() }

// Supported reports whether futexes work on this system.
func Supported() bool { return false }
