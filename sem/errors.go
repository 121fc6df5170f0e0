package sem

import (
	"errors"

	"github.com/shmkit/shmkit/internal/robust"
)

// Errors of the lock types (Mutex, RMutex, and the Mutex under a Cond).
var (
	// ErrOwnerDead: the lock's holder died; the caller now holds the lock,
	// must repair what it protects, and call MarkConsistent before Unlock.
	ErrOwnerDead = robust.ErrOwnerDead
	// ErrNotRecoverable: an inheritor unlocked without MarkConsistent; the
	// lock is permanently unusable.
	ErrNotRecoverable = robust.ErrNotRecoverable
	// ErrLocked: a Try call found the object held or empty.
	ErrLocked = robust.ErrLocked
	// ErrNotOwner: Unlock or MarkConsistent without holding the lock.
	ErrNotOwner = robust.ErrNotOwner
)

var (
	// ErrOverflow: Release of a bounded Semaphore beyond its bound.
	ErrOverflow = errors.New("sem: semaphore released too many times")
	// ErrBroken: a Barrier was broken by a timeout, an abort, a reset or
	// the death of a party.
	ErrBroken = errors.New("sem: barrier broken")
	// ErrInvalid: a bad argument (zero parties, a bound below the initial
	// count) or an object whose shared state is out of range.
	ErrInvalid = errors.New("sem: invalid argument or state")
)
