// Package robust implements the cross-process robust mutex that sem.Mutex
// and shm.Array share.
//
// # Protocol
//
// The lock is one 32-bit word in shared memory:
//
//	bits 0..28  owner: the participant token of the holder (0: unlocked)
//	bit  29     not recoverable: the word is exactly this; every Lock fails
//	bit  30     owner died: held by a process that inherited it from a dead
//	            owner and has not yet called MarkConsistent
//	bit  31     waiters: someone may be asleep on the word
//
// Lock's fast path is CAS(0 → self): one instruction, no syscall, and the
// owner is recorded by the same CAS that takes the lock, so no crash can
// leave a held lock without an owner to check.
//
// A locker that finds the lock held asks the kernel whether the owner's
// participant is alive (shm.Segment.Alive: the owner's OFD lock). If it is
// dead, the locker takes the word over with CAS(v → self|ownerDied|waiters)
// and reports ErrOwnerDead; it keeps the waiters bit because others may
// sleep. Unlock without MarkConsistent makes the word NotRecoverable, as
// POSIX robust mutexes do. A stopped (SIGSTOP) owner still holds its OFD
// lock, so it is never taken for dead.
//
// # Why no wakeup is lost
//
// A sleeper first makes sure the waiters bit is set in the word (CAS) and
// then calls FUTEX_WAIT with the exact value it saw, waiters bit included.
// Unlock swaps the word to 0 and calls FUTEX_WAKE if the old value had the
// waiters bit. Either the unlocking swap comes before the sleeper's
// FUTEX_WAIT (the kernel sees a value ≠ expected and returns EAGAIN at once)
// or after it (the swap sees the waiters bit and wakes). A woken sleeper
// acquires with the waiters bit set, since others may still sleep; at worst
// that costs one needless FUTEX_WAKE. A sleeper also wakes every
// CheckInterval to re-check the owner's liveness, which bounds how long an
// owner's death can go unnoticed by a waiter that was already asleep.
//
// Within a process at most one goroutine per Mutex sleeps in the kernel
// (futex.Gate); the others park behind it and re-read the word when they get
// through, so the wakeup that freed the lock is seen by them too.
package robust
