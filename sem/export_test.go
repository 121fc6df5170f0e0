package sem

import "github.com/shmkit/shmkit/internal/futex"

// EventCountOf returns the event count a primitive's waiters sleep on
// (for a Barrier, the one its waiters for the next generation use).
func EventCountOf(x any) *futex.EventCount {
	switch v := x.(type) {
	case *Mutex:
		return v.m.EventCount()
	case *Semaphore:
		return v.ec
	case *Event:
		return v.ec
	case *Cond:
		return v.ec
	}
	panic("EventCountOf: unknown type")
}
