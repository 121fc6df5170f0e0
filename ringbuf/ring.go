package ringbuf

import (
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

// ring is the algorithm under a Queue: the SPSC byte ring (spsc.go) or the
// MPMC slot ring (mpmc.go). A Queue picks one in its constructor and never
// asks which it has. Producer methods are called with the handle's
// producer gate held, consumer methods with its consumer gate; the rest
// are safe at any time.
type ring interface {
	// reserve returns room for an n-byte message in place (ErrFull,
	// ErrClosed, ErrRole, ErrCorrupt). The room is the caller's until it
	// calls commit, stage or abandon.
	reserve(n int) ([]byte, error)
	// commit publishes the reserved message with its first n bytes. nil
	// means consumers will receive it; ErrClosed means they will not.
	commit(n int) error
	// stage is commit without publishing yet (a batch); flush publishes
	// everything staged (ErrClosed: none of it).
	stage(n int)
	flush() error
	// abandon gives up the reservation.
	abandon()
	// put is reserve, copy and commit in one call (the copy path's one
	// dynamic call per message); getInto is next, copy and consume.
	put(msg []byte) error
	getInto(buf []byte) (int, error)
	// next returns the next message in place (ErrEmpty; ErrClosed once the
	// queue is shut down and drained; ErrShortBuffer if limit >= 0 and the
	// message is longer, leaving it queued). consume finishes with it.
	next(limit int) ([]byte, error)
	consume()
	// release makes consumed space reusable; a ring may defer that until
	// force, and reports whether it released any.
	release(force bool) bool
	// waitKey is taken, with the side's gate held, by a call that must
	// wait: a snapshot of the side's private state, and how long the call
	// may sleep before it looks again (0: until woken; MPMC uses it to
	// recover positions whose claimant died). ready is the sleeper's
	// re-check, with the gate released: it reads only shared state and the
	// key, and reports whether an n-byte reserve (producer) or next
	// (consumer) may succeed now, or the queue was shut down. A stale key
	// costs at most a spurious wakeup.
	waitKey(producer bool) (key uint64, retry time.Duration)
	ready(producer bool, n int, key uint64) bool

	// shared reports whether several handles may take from (or put into)
	// the ring at once, so that a taker must pass wakeups on (Queue.chain).
	shared() bool

	shutdown()
	isShutdown() bool
	length() int
	stats(*Stats)
	// detach releases what this handle holds in the ring (roles, claims).
	detach()
}

var (
	_ ring = (*spscRing)(nil)
	_ ring = (*mpmcRing)(nil)
)

// core is one queue's objects in a segment, as one attachment sees them:
// the control block, the ring, the event counts and this handle's stats
// line. A Queue is a core and a ring with policy around them; a Pipe end
// is two cores.
type core struct {
	seg      *shm.Segment
	ctl      ctl
	ringMem  []byte
	mode     Mode
	maxMsg   int
	capacity int    // SPSC bytes, MPMC slots
	slotSize uint64 // MPMC
	stats    counters
	notEmpty *futex.EventCount
	notFull  *futex.EventCount
	join     *futex.EventCount
	parts    int // participant slots (stats lines)
}

// statsLine returns participant slot i's line.
func (c *core) statsLine(i int) counters {
	off := statsOff(c.parts, i)
	return counters{c.ctl.mem[off : off+statsLine : off+statsLine]}
}

// newRing builds this handle's ring over c.
func (c *core) newRing(h *hooks) ring {
	if c.mode == MPMC {
		return newMPMC(c, h)
	}
	return newSPSC(c)
}
