// Package futex wraps the Linux futex(2) calls that shmkit's primitives use
// on words in shared memory.
//
// Contract (after runtime/lock_futex.go):
//
//	Wait(addr, val, deadline): atomically, if *addr == val, sleep until a
//	Wake on addr, the deadline, or a signal. It may return spuriously; the
//	caller always re-reads *addr and loops.
//	Wake(addr, n): wake up to n sleepers on addr in any process.
//
// The calls never use FUTEX_PRIVATE_FLAG: the words live in MAP_SHARED
// mappings and the sleepers are in other processes. Deadlines are absolute
// (FUTEX_WAIT_BITSET on CLOCK_MONOTONIC), so a wait that is interrupted by a
// signal (EINTR) and retried does not sleep longer than asked.
//
// On systems other than Linux every call returns errors.ErrUnsupported.
package futex
