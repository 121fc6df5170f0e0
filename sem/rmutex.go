package sem

import (
	"context"
	"sync/atomic"

	"github.com/shmkit/shmkit/internal/robust"
	"github.com/shmkit/shmkit/shm"
)

// RMutex object: the lock word, the owner's goroutine and depth, then the
// lock's event count.
const (
	rmLock  = 0
	rmGoid  = 8  // atomic uint64: goroutine id of the holder within its process
	rmDepth = 16 // uint32: recursion depth, touched only by the holder
	rmFixed = 24
)

// RMutex is a recursive robust lock: the goroutine that holds it may lock
// it again, and must unlock it as many times. The owner is the pair
// (process, goroutine); only the owner may unlock (ErrNotOwner otherwise).
// Python's multiprocessing.RLock.
//
// Recursion needs the goroutine's identity, which Go does not expose; on
// amd64 and arm64 it is read from the runtime's g register (one load),
// elsewhere parsed from runtime.Stack (microseconds).
type RMutex struct {
	m     *robust.Mutex
	goid  *atomic.Uint64
	depth *atomic.Uint32
}

// NewRMutex creates an unlocked RMutex called name.
func NewRMutex(seg *shm.Segment, name string) (*RMutex, error) {
	size, _ := objLayout(seg, rmFixed, 1, 0)
	_, mem, err := seg.Alloc(name, shm.KindRMutex, 0, size, nil)
	if err != nil {
		return nil, err
	}
	return newRMutex(seg, mem)
}

// LookupRMutex finds the RMutex called name.
func LookupRMutex(seg *shm.Segment, name string) (*RMutex, error) {
	_, mem, err := seg.Lookup(name, shm.KindRMutex, 0)
	if err != nil {
		return nil, err
	}
	return newRMutex(seg, mem)
}

func newRMutex(seg *shm.Segment, mem []byte) (*RMutex, error) {
	_, ecOff := objLayout(seg, rmFixed, 1, 0)
	m, err := newRobust(seg, mem[rmLock:], ecOff(0))
	if err != nil {
		return nil, err
	}
	return &RMutex{m: m, goid: word64(mem, rmGoid), depth: word(mem, rmDepth)}, nil
}

// owned reports whether the calling goroutine (id g) holds the lock. The
// goid word is written only by a holder, with its own id or 0, so another
// goroutine of this process never reads its own id there by accident.
func (r *RMutex) owned(g uint64) bool { return r.m.Held() && r.goid.Load() == g }

// Lock takes the lock or, if this goroutine holds it, deepens the
// recursion. ErrOwnerDead is as for Mutex (the depth restarts at 1).
func (r *RMutex) Lock(ctx context.Context) error {
	g := goid()
	if r.owned(g) {
		r.depth.Add(1)
		return nil
	}
	err := r.m.Lock(ctx)
	if err != nil && err != ErrOwnerDead {
		return err
	}
	r.goid.Store(g)
	r.depth.Store(1)
	return err
}

// TryLock is Lock without waiting (ErrLocked).
func (r *RMutex) TryLock() error {
	g := goid()
	if r.owned(g) {
		r.depth.Add(1)
		return nil
	}
	err := r.m.TryLock()
	if err != nil && err != ErrOwnerDead {
		return err
	}
	r.goid.Store(g)
	r.depth.Store(1)
	return err
}

// Unlock undoes one Lock; the last one releases the lock. It returns
// ErrNotOwner unless the calling goroutine holds the lock.
func (r *RMutex) Unlock() error {
	if !r.owned(goid()) {
		return ErrNotOwner
	}
	if r.depth.Add(^uint32(0)) > 0 {
		return nil
	}
	r.goid.Store(0)
	return r.m.Unlock()
}

// MarkConsistent is as for Mutex.
func (r *RMutex) MarkConsistent() error {
	if !r.owned(goid()) {
		return ErrNotOwner
	}
	return r.m.MarkConsistent()
}
