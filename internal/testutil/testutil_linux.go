package testutil

import "syscall"

// sysProcAttr makes the kernel kill a child whose parent dies, so even a
// crashed or SIGKILLed test binary leaves no child behind. Linux sends the
// signal when the forking OS thread exits; Go ends a thread only when a
// goroutine exits while locked to it (see doc.go, Caveats).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
