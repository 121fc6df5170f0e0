//go:build linux

package futex

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Operation codes; x/sys/unix exports SYS_FUTEX but not these. None has
// FUTEX_PRIVATE_FLAG: the words are shared between processes.
const (
	opWaitBitset = 9
	opWakeBitset = 10
	bitsetAll    = 0xffffffff
)

// Wait sleeps while *addr == val. It returns nil when woken, when *addr
// already differed (EAGAIN), or spuriously; ErrTimeout once the absolute
// deadline has passed (a zero deadline means none). EINTR is retried with
// the same absolute deadline.
func Wait(addr *atomic.Uint32, val uint32, deadline time.Time) error {
	return wait(addr, val, deadline, bitsetAll)
}

// wait is Wait for sleepers whose bitset is bits: wakeBitset reaches only
// those sharing a bit with its mask; Wake reaches all.
func wait(addr *atomic.Uint32, val uint32, deadline time.Time, bits uint32) error {
	var tsp *unix.Timespec
	var ts unix.Timespec
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return ErrTimeout
		}
		// FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a
		// retry after EINTR keeps the same end.
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return fmt.Errorf("%w: clock_gettime: %w", ErrFutex, err)
		}
		ts = unix.NsecToTimespec(now.Nano() + int64(d))
		tsp = &ts
	}
	for {
		_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWaitBitset,
			uintptr(val), uintptr(unsafe.Pointer(tsp)), 0, uintptr(bits))
		switch e {
		case 0, unix.EAGAIN:
			return nil
		case unix.EINTR:
			continue
		case unix.ETIMEDOUT:
			return ErrTimeout
		default:
			return errnoErr(e)
		}
	}
}

// Wake wakes up to n sleepers on addr, in any process, and reports how many
// it woke.
func Wake(addr *atomic.Uint32, n int) (int, error) { return wakeBitset(addr, n, bitsetAll) }

func wakeBitset(addr *atomic.Uint32, n int, bits uint32) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	n = min(n, All)
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWakeBitset, uintptr(n), 0, 0, uintptr(bits))
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(r), nil
}

// errnoErr matches both ErrFutex and the errno (EFAULT, for a word whose
// page a peer truncated away).
func errnoErr(e syscall.Errno) error { return fmt.Errorf("%w: %w", ErrFutex, e) }

// yield gives this thread's CPU to another runnable thread, if any; a
// spinner that shares its CPU with the thread it waits for must let it run.
func yield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// Supported reports whether futexes work on this system.
func Supported() bool { return true }
