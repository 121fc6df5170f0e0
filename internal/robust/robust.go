// See doc.go for the protocol.

package robust

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
)

// Word bits.
const (
	OwnerMask      = 1<<29 - 1
	NotRecoverable = 1 << 29
	OwnerDied      = 1 << 30
)

// CheckInterval is how often a sleeping waiter re-checks the owner.
const CheckInterval = 50 * time.Millisecond

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

// Pinner keeps the memory of the lock mapped while a slow path runs (a
// shm.Segment). A nil Pinner pins nothing (tests, words outside a segment).
type Pinner interface {
	Pin() error
	Unpin()
}

// Mutex is one process's handle on a lock word.
type Mutex struct {
	word  *atomic.Uint32
	ec    *futex.EventCount // where waiters sleep; Unlock notifies it
	sp    futex.Spinner
	self  uint32
	alive func(uint32) bool
	pin   Pinner
}

// New returns a handle on word, whose waiters sleep on ec, for the
// participant self; alive reports whether a participant token is alive.
func New(word *atomic.Uint32, ec *futex.EventCount, self uint32, alive func(uint32) bool, pin Pinner) *Mutex {
	return &Mutex{word: word, ec: ec, self: self & OwnerMask, alive: alive, pin: pin}
}

// Word returns the lock word, for inspection.
func (m *Mutex) Word() *atomic.Uint32 { return m.word }

// EventCount returns the event count the waiters sleep on.
func (m *Mutex) EventCount() *futex.EventCount { return m.ec }

func (m *Mutex) pinned() (func(), error) {
	if m.pin == nil {
		return func() {}, nil
	}
	if err := m.pin.Pin(); err != nil {
		return nil, err
	}
	return m.pin.Unpin, nil
}

// TryLock takes the lock if it is free or its owner is dead.
func (m *Mutex) TryLock() error {
	// Invariant: the word goes 0 → self only by a CAS here or in acquire; a
	// successful CAS makes us the sole owner and records who we are.
	if m.word.CompareAndSwap(0, m.self) {
		return nil
	}
	return m.tryLockSlow()
}

func (m *Mutex) tryLockSlow() error {
	unpin, err := m.pinned()
	if err != nil {
		return err
	}
	defer unpin()
	for {
		v := m.word.Load()
		if done, err := m.acquire(v, true); done {
			return err
		}
		if v == m.word.Load() {
			return ErrLocked
		}
	}
}

// acquire tries one transition from the observed word v, asking the kernel
// about the owner if checkOwner. It reports done when the caller is
// finished (holding the lock, or with a final error).
func (m *Mutex) acquire(v uint32, checkOwner bool) (bool, error) {
	if v == NotRecoverable {
		return true, ErrNotRecoverable
	}
	owner := v & OwnerMask
	if owner == 0 {
		// Free. Any stray flag bits without an owner go with this CAS.
		return m.word.CompareAndSwap(v, m.self), nil
	}
	if checkOwner && !m.alive(owner) {
		// The kernel proved the owner dead (its OFD lock is gone). The CAS
		// fails if anything changed since we looked, e.g. another waiter
		// took over first; then we start again.
		if m.word.CompareAndSwap(v, m.self|OwnerDied) {
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
	unpin, err := m.pinned()
	if err != nil {
		return err
	}
	defer unpin()
	var checked uint32 // owner whose liveness was last checked
	// Re-check the owner at fixed times, not CheckInterval after each
	// wakeup: wakeups must not postpone the check.
	nextCheck := time.Now().Add(CheckInterval)
	for {
		v := m.word.Load()
		owner := v & OwnerMask
		check := owner != 0 && owner != checked
		if done, err := m.acquire(v, check); done {
			return err
		}
		if check {
			checked = owner
		}
		if owner == 0 {
			continue // lost a race; look again
		}
		// Wait for the word to change (Unlock notifies after its CAS, see
		// doc.go) or for the next liveness check.
		err := m.ec.Wait(ctx, nextCheck, &m.sp, func() bool { return m.word.Load() != v })
		if err != nil && !errors.Is(err, futex.ErrTimeout) {
			return err
		}
		if !time.Now().Before(nextCheck) {
			checked = 0 // re-check the owner now
			nextCheck = time.Now().Add(CheckInterval)
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
	// except a waiter that proved the owner dead. The notify follows the
	// CAS that frees the word (the event count's publish).
	if m.word.CompareAndSwap(m.self, 0) {
		m.ec.Notify(1)
		return nil
	}
	for {
		v := m.word.Load()
		if v&OwnerMask != m.self || v == NotRecoverable {
			return ErrNotOwner
		}
		if v&OwnerDied != 0 {
			m.word.Store(NotRecoverable)
			m.ec.Notify(futex.All)
			return nil
		}
		if m.word.CompareAndSwap(v, 0) {
			m.ec.Notify(1)
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
