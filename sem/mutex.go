package sem

import (
	"context"

	"github.com/shmkit/shmkit/internal/robust"
	"github.com/shmkit/shmkit/shm"
)

// Mutex is a robust mutual-exclusion lock shared by processes. The
// protocol and its no-lost-wakeup argument are in internal/robust: one
// 32-bit word holding the owner's participant token and the owner-died
// bit, and an event count its waiters sleep on.
//
// Ownership belongs to the process (its participant token), not the
// goroutine: like sync.Mutex, any goroutine of the holding process may
// Unlock. A holder that dies, or closes its segment, abandons the lock: the
// next locker gets it with ErrOwnerDead.
type Mutex struct {
	m *robust.Mutex
}

// Mutex object: the lock word, then its event count.
const (
	muLock  = 0
	muFixed = 8
)

// NewMutex creates an unlocked Mutex called name in seg.
func NewMutex(seg *shm.Segment, name string) (*Mutex, error) {
	size, _ := objLayout(seg, muFixed, 1, 0)
	_, mem, err := seg.Alloc(name, shm.KindMutex, 0, size, nil)
	if err != nil {
		return nil, err
	}
	return newMutex(seg, mem)
}

// LookupMutex finds the Mutex called name.
func LookupMutex(seg *shm.Segment, name string) (*Mutex, error) {
	_, mem, err := seg.Lookup(name, shm.KindMutex, 0)
	if err != nil {
		return nil, err
	}
	return newMutex(seg, mem)
}

func newMutex(seg *shm.Segment, mem []byte) (*Mutex, error) {
	_, ecOff := objLayout(seg, muFixed, 1, 0)
	m, err := newRobust(seg, mem[muLock:], ecOff(0))
	if err != nil {
		return nil, err
	}
	return &Mutex{m: m}, nil
}

// Lock takes the lock, waiting until it is free, its holder is proven dead
// (the lock is then held and the error is ErrOwnerDead), or ctx ends
// (ctx.Err(); not held). A waiter notices an owner's death within about
// 50 ms even while asleep.
func (m *Mutex) Lock(ctx context.Context) error { return m.m.Lock(ctx) }

// TryLock takes the lock if it is free or its holder is dead, and returns
// ErrLocked otherwise. It never sleeps.
func (m *Mutex) TryLock() error { return m.m.TryLock() }

// Unlock releases the lock; it wakes one sleeper only if one announced
// itself. After ErrOwnerDead without MarkConsistent the lock becomes
// unusable (ErrNotRecoverable for everyone).
func (m *Mutex) Unlock() error { return m.m.Unlock() }

// MarkConsistent declares the state the lock protects repaired after
// ErrOwnerDead, so Unlock leaves the lock usable.
func (m *Mutex) MarkConsistent() error { return m.m.MarkConsistent() }

// Held reports whether this process holds the lock.
func (m *Mutex) Held() bool { return m.m.Held() }
