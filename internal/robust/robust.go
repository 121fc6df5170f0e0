// See doc.go for the protocol.

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

// Host is the segment the word lives in: it keeps the mapping alive while
// a slow path runs (Pin) and lets Close wake sleepers (Sleep). A nil Host
// sleeps with plain futex calls (tests, words outside a segment).
type Host interface {
	Pin() error
	Unpin()
	Sleep(ctx context.Context, word *atomic.Uint32, val uint32, limit time.Time) error
}

// Mutex is one process's handle on a lock word.
type Mutex struct {
	word  *atomic.Uint32
	self  uint32
	alive func(uint32) bool
	host  Host
	gate  *futex.Gate
}

// New returns a handle on word for the participant self; alive reports
// whether a participant token is alive.
func New(word *atomic.Uint32, self uint32, alive func(uint32) bool, host Host) *Mutex {
	return &Mutex{word: word, self: self & OwnerMask, alive: alive, host: host, gate: futex.NewGate()}
}

func (m *Mutex) pin() error {
	if m.host == nil {
		return nil
	}
	return m.host.Pin()
}

func (m *Mutex) unpin() {
	if m.host != nil {
		m.host.Unpin()
	}
}

func (m *Mutex) sleep(ctx context.Context, val uint32, limit time.Time) error {
	if m.host == nil {
		return futex.WaitContext(ctx, m.word, val, limit)
	}
	return m.host.Sleep(ctx, m.word, val, limit)
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
	if err := m.pin(); err != nil {
		return err
	}
	defer m.unpin()
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
	if err := m.pin(); err != nil {
		return err
	}
	defer m.unpin()
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
	// Re-check the owner at fixed times, not CheckInterval after each
	// wakeup: spurious wakeups must not postpone the check.
	nextCheck := time.Now().Add(CheckInterval)
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
		err := m.sleep(ctx, v, nextCheck)
		m.gate.Leave()
		switch {
		case errors.Is(err, futex.ErrTimeout) || !time.Now().Before(nextCheck):
			checked = 0 // re-check the owner now
			nextCheck = time.Now().Add(CheckInterval)
		case err != nil:
			// We may have consumed the wakeup of an Unlock that freed the
			// lock (Unlock clears the word to 0); pass it on so another
			// sleeper does not wait for its next liveness check.
			if w := m.word.Load(); w&OwnerMask == 0 && w != NotRecoverable {
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
