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

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
)

// Word bits.
const (
	OwnerMask      = 1<<29 - 1
	NotRecoverable = 1 << 29
	OwnerDied      = 1 << 30
	Waiters        = 1 << 31
)

// CheckInterval is how often a sleeping waiter re-checks the owner.
const CheckInterval = 50 * time.Millisecond

// spinIters bounds the spin before a locker sleeps. About 1–2 µs on this
// class of machine: long enough to catch a short critical section in another
// process, short enough not to matter when it is long.
const spinIters = 64

var (
	// ErrOwnerDead: the lock was taken from a dead owner; the caller holds it
	// and must repair the protected state and call MarkConsistent.
	ErrOwnerDead = errors.New("owner died holding the lock")
	// ErrNotRecoverable: a previous inheritor unlocked without
	// MarkConsistent; the lock can never be taken again.
	ErrNotRecoverable = errors.New("lock not recoverable")
	// ErrLocked: TryLock found the lock held by a live owner.
	ErrLocked = errors.New("lock held")
	// ErrNotOwner: Unlock or MarkConsistent by a process that does not hold
	// the lock.
	ErrNotOwner = errors.New("lock not held by this process")
)

// Mutex is one process's handle on a lock word.
type Mutex struct {
	word  *atomic.Uint32
	self  uint32
	alive func(uint32) bool
	gate  *futex.Gate
}

// New returns a handle on word for the participant self; alive reports
// whether a participant token is alive.
func New(word *atomic.Uint32, self uint32, alive func(uint32) bool) *Mutex {
	return &Mutex{word: word, self: self & OwnerMask, alive: alive, gate: futex.NewGate()}
}

// Word returns the lock word, for inspection.
func (m *Mutex) Word() *atomic.Uint32 { return m.word }

// TryLock takes the lock if it is free or its owner is dead.
func (m *Mutex) TryLock() error {
	// Invariant: the word goes 0 → self only here and in lockSlow; a
	// successful CAS makes us the sole owner.
	if m.word.CompareAndSwap(0, m.self) {
		return nil
	}
	return m.tryLockSlow()
}

func (m *Mutex) tryLockSlow() error {
	for {
		v := m.word.Load()
		if done, err := m.acquire(v, 0, true); done {
			return err
		}
		if v == m.word.Load() {
			return ErrLocked
		}
	}
}

// acquire tries one transition from the observed word v. It reports done
// when the caller is finished (holding the lock, or with a final error).
func (m *Mutex) acquire(v, keep uint32, checkOwner bool) (bool, error) {
	if v == NotRecoverable {
		return true, ErrNotRecoverable
	}
	owner := v & OwnerMask
	if owner == 0 {
		// Free (the waiters bit may be set): take it, keeping or adding
		// the waiters bit.
		return m.word.CompareAndSwap(v, m.self|v&Waiters|keep), nil
	}
	if checkOwner && !m.alive(owner) {
		// The kernel proved the owner dead (its OFD lock is gone). The CAS
		// fails if anything changed since we looked, e.g. another waiter
		// took over first; then we start again.
		if m.word.CompareAndSwap(v, m.self|OwnerDied|v&Waiters) {
			return true, ErrOwnerDead
		}
	}
	return false, nil
}

// Lock takes the lock, waiting until it is free, its owner is proven dead
// (ErrOwnerDead, lock held), or ctx ends (ctx.Err(), lock not held).
func (m *Mutex) Lock(ctx context.Context) error {
	if m.word.CompareAndSwap(0, m.self) {
		return nil
	}
	return m.lockSlow(ctx)
}

func (m *Mutex) lockSlow(ctx context.Context) error {
	if runtime.GOMAXPROCS(0) > 1 {
		for i := 0; i < spinIters; i++ {
			v := m.word.Load()
			if v&OwnerMask == 0 || v == NotRecoverable {
				if done, err := m.acquire(v, 0, false); done {
					return err
				}
			}
			if i%8 == 7 {
				runtime.Gosched()
			}
		}
	}
	var checked uint32 // owner whose liveness was last checked
	for {
		v := m.word.Load()
		owner := v & OwnerMask
		check := owner != 0 && owner != checked
		if done, err := m.acquire(v, Waiters, check); done {
			return err
		}
		if check {
			checked = owner
		}
		if owner == 0 || v == NotRecoverable {
			continue // lost a race; look again
		}
		// Announce ourselves before sleeping (see package doc).
		if v&Waiters == 0 {
			if !m.word.CompareAndSwap(v, v|Waiters) {
				continue
			}
			v |= Waiters
		}
		if err := m.gate.Enter(ctx); err != nil {
			return err
		}
		err := futex.WaitContext(ctx, m.word, v, time.Now().Add(CheckInterval))
		m.gate.Leave()
		switch {
		case errors.Is(err, futex.ErrTimeout):
			checked = 0 // re-check the owner now
		case err != nil:
			// We may have consumed the wakeup of an Unlock that freed the
			// lock; pass it on so another sleeper does not wait for its
			// next liveness check.
			if w := m.word.Load(); w&OwnerMask == 0 && w&Waiters != 0 {
				futex.Wake(m.word, 1)
			}
			return err
		}
	}
}

// Unlock releases the lock. If the lock was inherited from a dead owner and
// not marked consistent, it becomes NotRecoverable and every waiter is
// woken to find that out. It returns ErrNotOwner if this process does not
// hold the lock (a peer may have scribbled on the word; that must not crash
// us).
func (m *Mutex) Unlock() error {
	// Invariant: only the owner moves the word away from an owned value,
	// except a waiter that proved the owner dead.
	if m.word.CompareAndSwap(m.self, 0) {
		return nil
	}
	for {
		v := m.word.Load()
		if v&OwnerMask != m.self || v == NotRecoverable {
			return ErrNotOwner
		}
		if v&OwnerDied != 0 {
			m.word.Store(NotRecoverable)
			futex.Wake(m.word, futex.All)
			return nil
		}
		if m.word.CompareAndSwap(v, 0) {
			if v&Waiters != 0 {
				futex.Wake(m.word, 1)
			}
			return nil
		}
	}
}

// MarkConsistent declares the state protected by an inherited lock
// repaired, so the lock stays usable. It returns ErrNotOwner unless this
// process holds the lock; it is a no-op on a lock that is consistent.
func (m *Mutex) MarkConsistent() error {
	for {
		v := m.word.Load()
		if v&OwnerMask != m.self || v == NotRecoverable {
			return ErrNotOwner
		}
		if v&OwnerDied == 0 || m.word.CompareAndSwap(v, v&^OwnerDied) {
			return nil
		}
	}
}

// Held reports whether this process holds the lock.
func (m *Mutex) Held() bool {
	v := m.word.Load()
	return v != NotRecoverable && v&OwnerMask == m.self
}
