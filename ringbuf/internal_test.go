package ringbuf

// Test access to a handle's internals.

func (q *Queue) mpmc() *mpmcRing { return q.r.(*mpmcRing) }
