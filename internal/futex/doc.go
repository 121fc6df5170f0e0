// Package futex holds the one sleep/wakeup primitive under every blocking
// call of shmkit, and the pieces it is made of.
//
//   - EventCount (eventcount.go): announce, re-check, sleep with a context
//     and an absolute deadline, give up passing on a swallowed wakeup,
//     notify n. Its protocol, the argument why no wakeup is lost, and how
//     the announcements of dead sleepers are reclaimed head that file;
//     eventcount.pml is its model, checked by spin.
//   - Spinner (spin.go): the one adaptive spin policy, and poll mode.
//   - Gate (gate.go): an in-process lock whose Enter honours a context, for
//     the one kernel sleeper per process and object, and for exclusive
//     access to a side of a queue handle.
//   - Wait and Wake: futex(2) itself.
//
// Contract of futex(2) (after runtime/lock_futex.go):
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
