// Package sem provides synchronization primitives that work across
// processes: Mutex (robust), RMutex (recursive), Semaphore (counting,
// optionally bounded), Event, Cond and Barrier, the counterparts of
// Python's multiprocessing Lock, RLock, Semaphore/BoundedSemaphore, Event,
// Condition and Barrier.
//
// Each object lives in a shm.Segment under a name: one process creates it
// (NewMutex), others find it (LookupMutex). All state is in shared memory;
// a handle holds only pointers into the mapping.
//
// # Futexes
//
// Every primitive is built on 32-bit words manipulated with sync/atomic
// (whose operations are sequentially consistent) and on futex(2) without
// FUTEX_PRIVATE_FLAG, so sleepers in other processes are woken. The fast
// paths (an uncontended Lock, an Acquire with permits, a Set with no
// waiters) are one atomic instruction and make no syscall; sleepers announce
// themselves (a waiters bit or count) so that wakers call FUTEX_WAKE only
// when someone may sleep. Each file begins with its protocol and the
// argument why no wakeup is lost. Waits take a context.Context: its deadline
// becomes an absolute futex timeout, and its cancellation wakes the sleeper.
//
// A goroutine asleep in FUTEX_WAIT holds an OS thread. So that a thousand
// goroutines waiting on one lock do not hold a thousand threads, at most one
// goroutine per object handle sleeps in the kernel; the others park in the
// Go scheduler behind it and re-check the shared word when they get through.
// Look an object up once per process and share the handle.
//
// # Robustness
//
// A Mutex records its holder's participant token (see shm) in the lock word
// itself, by the same CAS that takes the lock. A locker that finds the lock
// held asks the kernel whether the holder is alive: its open-file-
// description lock on the segment is dropped by the kernel when it dies. A
// stopped or slow process is alive and is never robbed. If the holder is
// dead the locker takes the lock and gets ErrOwnerDead; it must repair the
// protected state and call MarkConsistent, or the lock becomes unusable
// (ErrNotRecoverable), as POSIX robust mutexes behave. Waiters already
// asleep re-check the holder every 50 ms. The kernel's robust-futex list is
// not used: it is per OS thread, and goroutines move between threads.
//
// A Barrier whose arrived party dies breaks (ErrBroken) within about 50 ms;
// a party that dies before arriving looks like a late one, so give Wait a
// deadline.
//
// # Caveats
//
//   - Ownership of Mutex is per process (participant), not per goroutine,
//     as with sync.Mutex. RMutex is per goroutine.
//   - A process that closes its segment while holding a lock abandons it.
//   - A process that dies asleep in a Semaphore, Event or Cond leaves its
//     waiter count raised: later wakers make a needless FUTEX_WAKE syscall.
//     Correctness is unaffected.
//   - Any process that can open the segment can corrupt these words; shmkit
//     protects against crashed peers, not against malicious ones with write
//     access (a scribbled lock word yields errors, never a crash).
package sem
