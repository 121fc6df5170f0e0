//go:build linux

package sysx

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Supported reports whether the facilities in this package work here.
const Supported = true

// LockByte takes a write OFD lock on one byte of f without blocking. It
// reports false if another open file description holds it. The kernel drops
// the lock when the last descriptor of this open file description is closed,
// which happens at the latest when the process dies.
func LockByte(f *os.File, off int64) (bool, error) { return setLock(f, off, unix.F_WRLCK) }

// RLockByte takes a read (shared) OFD lock on one byte of f without
// blocking; it reports false if a write lock is held elsewhere.
func RLockByte(f *os.File, off int64) (bool, error) { return setLock(f, off, unix.F_RDLCK) }

func setLock(f *os.File, off int64, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
		return false, nil
	default:
		return false, fmt.Errorf("ofd lock: %w", err)
	}
}

// UnlockByte releases a lock taken by LockByte or RLockByte.
func UnlockByte(f *os.File, off int64) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		return fmt.Errorf("ofd unlock: %w", err)
	}
	return nil
}

// ByteLocked reports whether an open file description other than f's holds
// a lock on the byte at off. Locks held through f itself are not reported.
func ByteLocked(f *os.File, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return false, fmt.Errorf("ofd getlk: %w", err)
	}
	return lk.Type != unix.F_UNLCK, nil
}

// Reserve allocates size bytes of backing store for f, so that a full
// tmpfs fails here with ENOSPC rather than later with SIGBUS on a page fault.
func Reserve(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("fallocate %d bytes: %w", size, err)
		}
		return nil
	}
}

// Memfd creates an anonymous shared-memory file that can be sealed.
func Memfd(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// SealSize forbids any later change of f's size, so no holder can shrink
// it under another's mapping (SIGBUS) or grow it.
func SealSize(f *os.File) error {
	_, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
	if err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	return nil
}

// Seals returns the seals set on f.
func Seals(f *os.File) (int, error) {
	s, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return 0, fmt.Errorf("get seals: %w", err)
	}
	return s, nil
}

// OpenTmpfile creates an unnamed regular file in dir (O_TMPFILE). It
// reports errors.ErrUnsupported if the file system cannot.
func OpenTmpfile(dir string, mode uint32) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, errors.ErrUnsupported
		}
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir+"/(tmpfile)"), nil
}

// LinkTmpfile gives the unnamed file f the name path. It fails with
// EEXIST if the name is taken, which makes publication exclusive.
func LinkTmpfile(f *os.File, path string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}

var startOnce = sync.OnceValues(func() (uint64, error) { return StartTime(os.Getpid()) })

// SelfStartTime returns this process's start time in clock ticks since boot.
func SelfStartTime() (uint64, error) { return startOnce() }

// StartTime returns a process's start time in clock ticks since boot (field
// 22 of /proc/PID/stat). With the pid it names a process unambiguously.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; fields
	// resume after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("parse /proc stat")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, errors.New("parse /proc stat: short")
	}
	return strconv.ParseUint(string(f[19]), 10, 64)
}
