//go:build linux

package futex

import (
	"errors"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Operation codes; x/sys/unix exports SYS_FUTEX but not these.
const (
	opWake       = 1
	opWaitBitset = 9
	bitsetAll    = 0xffffffff
)

// Wait sleeps while *addr == val. It returns nil when woken, when *addr
// already differed (EAGAIN), or spuriously; ErrTimeout once the absolute
// deadline has passed (a zero deadline means none). EINTR is retried with the
// same absolute deadline.
func Wait(addr *atomic.Uint32, val uint32, deadline time.Time) error {
	var tsp *unix.Timespec
	var ts unix.Timespec
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return ErrTimeout
		}
		// Convert the wall-clock deadline to CLOCK_MONOTONIC once, so
		// retries keep the same absolute end.
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return err
		}
		ts = unix.NsecToTimespec(now.Nano() + int64(d))
		tsp = &ts
	}
	for {
		_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWaitBitset,
			uintptr(val), uintptr(unsafe.Pointer(tsp)), 0, bitsetAll)
		switch e {
		case 0, unix.EAGAIN:
			return nil
		case unix.EINTR:
			continue
		case unix.ETIMEDOUT:
			return ErrTimeout
		default:
			return errors.Join(ErrFutex, e)
		}
	}
}

// Wake wakes up to n sleepers on addr, in any process, and reports how many
// it woke.
func Wake(addr *atomic.Uint32, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	if n > 1<<30 {
		n = 1 << 30
	}
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, errors.Join(ErrFutex, e)
	}
	return int(r), nil
}

// Supported reports whether futexes work on this system.
func Supported() bool { return true }
