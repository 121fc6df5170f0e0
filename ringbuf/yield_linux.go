//go:build linux

package ringbuf

import "syscall"

// osYield gives this thread's CPU to another runnable thread, if any
// (sched_yield(2)); runtime.Gosched yields only to goroutines.
func osYield() { syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0) }
