//go:build !linux

package testutil

import "syscall"

// sysProcAttr: without Pdeathsig, a child of a crashed parent ends at its
// own deadline (the -test.timeout Spawn passes).
func sysProcAttr() *syscall.SysProcAttr { return nil }
