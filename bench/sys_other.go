//go:build !linux

package bench

import (
	"errors"
	"os"
	"syscall"
)

func setDeathSignal(*syscall.SysProcAttr) {}

func allowedCPUs() ([]int, error) { return nil, errors.ErrUnsupported }

func pinProcess([]int) error { return errors.ErrUnsupported }

func setupMQ(cellSpec) (*setup, error) {
	return nil, unavailable("POSIX message queues are implemented for Linux only")
}

func attachMQ(cellSpec, []*os.File) ([]endpoint, error) { return nil, errors.ErrUnsupported }
