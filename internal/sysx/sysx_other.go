//go:build !linux

package sysx

import (
	"errors"
	"os"
)

// Supported reports whether the facilities in this package work here.
const Supported = false

func LockByte(f *os.File, off int64) (bool, error)   { return false, errors.ErrUnsupported }
func UnlockByte(f *os.File, off int64) error         { return errors.ErrUnsupported }
func RLockByte(f *os.File, off int64) (bool, error)  { return false, errors.ErrUnsupported }
func ByteLocked(f *os.File, off int64) (bool, error) { return false, errors.ErrUnsupported }
func Reserve(f *os.File, size int64) error           { return errors.ErrUnsupported }
func Memfd(name string) (*os.File, error)            { return nil, errors.ErrUnsupported }
func SealSize(f *os.File) error                      { return errors.ErrUnsupported }
func Seals(f *os.File) (int, error)                  { return 0, errors.ErrUnsupported }
func OpenTmpfile(dir string, mode uint32) (*os.File, error) {
	return nil, errors.ErrUnsupported
}
func LinkTmpfile(f *os.File, path string) error { return errors.ErrUnsupported }
func SelfStartTime() (uint64, error)            { return 0, errors.ErrUnsupported }
func StartTime(pid int) (uint64, error)         { return 0, errors.ErrUnsupported }
