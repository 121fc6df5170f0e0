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
// (whose operations are sequentially consistent) and on one sleep/wakeup
// primitive, the event count of internal/futex, whose futex(2) calls are
// not private, so sleepers in other processes are woken. The fast paths
// (an uncontended Lock, an Acquire with permits, a Set with no waiters) are
// one atomic instruction plus, for the waking side, a load of the event
// count's announcement mask; they make no syscall. Waiters spin briefly
// (adaptively), then announce themselves and sleep; wakers call FUTEX_WAKE
// only when someone is announced. The argument why no wakeup is lost is
// written once, in internal/futex; each file here begins with how its
// primitive uses it. Waits take a context.Context: its deadline becomes an
// absolute futex timeout, and its cancellation wakes the sleeper.
//
// A goroutine asleep in FUTEX_WAIT holds an OS thread. So that a thousand
// goroutines waiting on one lock do not hold a thousand threads, at most one
// goroutine per object and segment attachment sleeps in the kernel; the
// others wait in the Go scheduler behind it, honouring their contexts, and
// re-check the shared word when they get through.
//
// A process that dies while asleep leaves its announcement behind; the
// first waker that finds nobody to wake has it cleared once the kernel
// proves the process dead, so wakers make no syscalls again.
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
//   - Any process that can open the segment can corrupt these words; shmkit
//     protects against crashed peers, not against malicious ones with write
//     access (a scribbled lock word yields errors, never a crash).
package sem
