// Package robust implements the cross-process robust mutex that sem.Mutex,
// sem.RMutex, sem.Barrier and shm.Array share.
//
// # Protocol
//
// The lock is one 32-bit word in shared memory, and an event count
// (internal/futex) where its waiters sleep:
//
//	bits 0..28  owner: the participant token of the holder (0: unlocked)
//	bit  29     not recoverable: the word is exactly this; every Lock fails
//	bit  30     owner died: held by a process that inherited it from a dead
//	            owner and has not yet called MarkConsistent
//	bit  31     unused (zero)
//
// Lock's fast path is CAS(0 → self): one instruction, no syscall, and the
// owner is recorded by the same CAS that takes the lock, so no crash can
// leave a held lock without an owner to check.
//
// A locker that finds the lock held asks the kernel whether the owner's
// participant is alive (shm.Segment.Alive: the owner's OFD lock). If it is
// dead, the locker takes the word over with CAS(v → self|ownerDied) and
// reports ErrOwnerDead. Unlock without MarkConsistent makes the word
// NotRecoverable, as POSIX robust mutexes do. A stopped (SIGSTOP) owner
// still holds its OFD lock, so it is never taken for dead.
//
// # Sleeping
//
// A locker that must wait waits on the event count for the word to change
// from the value v it saw; Unlock's CAS changes the word and then notifies
// one waiter (all, when the lock becomes NotRecoverable). That is the event
// count's protocol with the CAS as the change, so its argument applies: no
// wakeup is lost, and Unlock makes a syscall only when a waiter is
// announced. A woken waiter that finds the lock taken again (another
// locker barged in) waits again. A waiter also wakes every CheckInterval to
// re-check the owner's liveness, which bounds how long an owner's death can
// go unnoticed by a waiter that was already asleep; and a waiter that died
// asleep is reclaimed by the event count like any other.
package robust
