package ringbuf

// JoinableQueue: counting unfinished tasks, and Join.
//
// The count is one word of the queue's control block, cUnfinished:
// gen<<genShift | count. count is the number of tasks put and not yet
// marked done; gen counts the times a decrement brought count to zero (it
// wraps). Joiners sleep on the control block's join event count.
//
// Producer (Put, TryPut, PutBatch): count += k BEFORE publishing the k
// messages; if fewer are put, the rest is taken back by a decrement (the
// same as TaskDone). So a message is never in the queue, or being
// processed, without being counted, and Join cannot see zero too early.
//
// Decrement (TaskDone, rollback): a CAS loop on the whole word; it refuses
// at count == 0 (ErrTaskDone), so count never goes negative. The CAS that
// takes count to zero also adds one to gen, and then notifies every joiner.
//
// Joiner: w0 := word; if count(w0) == 0, return; else wait on the event
// count until count(w) == 0 or gen(w) != gen(w0). That is the event
// count's protocol with the zeroing CAS as the change, so no wakeup is lost
// (internal/futex).
//
// Why gen: count may rise again (a new Put) between the zeroing CAS and the
// woken joiner's load. A joiner that then waited for the next zero could
// starve under steady load; one that returned on any wakeup could return
// too early, woken by a zero that happened before it started. gen changing
// after w0 proves a zero after Join began, when every task counted before
// Join began was done: Python's semantics, without its lock.

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/shmkit/shmkit/internal/futex"
	"github.com/shmkit/shmkit/shm"
)

const (
	genShift  = 40
	countMask = 1<<genShift - 1
)

// JoinableQueue is a Queue that counts unfinished tasks: Python's
// multiprocessing.JoinableQueue. Every message put adds a task; a consumer
// calls TaskDone when it has finished with a message it got; Join waits
// until no task is unfinished. The count lives in the queue's segment, so
// producers, consumers and joiners may be in different processes.
//
// Only the methods of JoinableQueue count: messages put through Queue()
// (or Reserve/Commit on it) are not tasks. As in Python, a consumer that
// dies between Get and TaskDone leaves its task unfinished for good: bound
// Join with a context when consumers may crash.
type JoinableQueue struct {
	q          *Queue
	unfinished *atomic.Uint64 // gen<<genShift | count; see the protocol above
}

func newJoinable(q *Queue, err error) (*JoinableQueue, error) {
	if err != nil {
		return nil, err
	}
	return &JoinableQueue{q: q, unfinished: q.c.ctl.u64(cUnfinished)}, nil
}

// CreateJoinable creates the named joinable queue (see Create).
func CreateJoinable(name string, opts Options) (*JoinableQueue, error) {
	return newJoinable(Create(name, opts))
}

// CreateJoinableAnonymous creates a joinable queue in a memfd segment, for
// a child process to attach with OpenJoinableFile(j.File()).
func CreateJoinableAnonymous(opts Options) (*JoinableQueue, error) {
	return newJoinable(CreateAnonymous(opts))
}

// OpenJoinable attaches to the named joinable queue.
func OpenJoinable(name string) (*JoinableQueue, error) {
	return newJoinable(Open(name))
}

// OpenJoinableFile attaches to a joinable queue passed as an inherited
// file.
func OpenJoinableFile(f *os.File) (*JoinableQueue, error) {
	return newJoinable(OpenFile(f))
}

// Queue returns the underlying queue. Puts made through it are not
// counted as tasks.
func (j *JoinableQueue) Queue() *Queue { return j.q }

// ---- producing ----

// Put puts msg as a new task, waiting for room as Queue.Put does.
func (j *JoinableQueue) Put(ctx context.Context, msg []byte) error {
	if err := j.add(1); err != nil {
		return err
	}
	err := j.q.Put(ctx, msg)
	if err != nil {
		j.undo(1)
	}
	return err
}

// TryPut puts msg as a new task if there is room now, else returns ErrFull.
func (j *JoinableQueue) TryPut(msg []byte) error {
	if err := j.add(1); err != nil {
		return err
	}
	err := j.q.TryPut(msg)
	if err != nil {
		j.undo(1)
	}
	return err
}

// PutBatch puts msgs as tasks, as Queue.PutBatch does, and returns how
// many were put.
func (j *JoinableQueue) PutBatch(ctx context.Context, msgs [][]byte) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := j.add(uint64(len(msgs))); err != nil {
		return 0, err
	}
	n, err := j.q.PutBatch(ctx, msgs)
	if n < len(msgs) {
		j.undo(uint64(len(msgs) - n))
	}
	return n, err
}

// ---- tasks ----

// TaskDone marks one task as finished. It returns ErrTaskDone, changing
// nothing, if no task is unfinished.
func (j *JoinableQueue) TaskDone() error {
	all := false
	if err := j.q.touch(func() { all = j.done(1) }); err != nil {
		return err
	}
	if !all {
		return ErrTaskDone
	}
	return nil
}

// add counts k new tasks.
func (j *JoinableQueue) add(k uint64) error {
	return j.q.touch(func() { j.unfinished.Add(k) })
}

// undo takes back the count of k tasks that were not put.
func (j *JoinableQueue) undo(k uint64) {
	j.q.touch(func() { j.done(k) }) // a closed or broken handle: nothing to take back from
}

// done subtracts up to k from the count, never below zero, and wakes the
// joiners if it reaches zero. It reports whether it could subtract all k.
// The caller touches the mapping (see Queue.touch).
func (j *JoinableQueue) done(k uint64) bool {
	for {
		w := j.unfinished.Load()
		c := w & countMask
		if c == 0 {
			return false
		}
		d := min(k, c)
		nw := w - d
		if c == d {
			nw += 1 << genShift // gen+1; it wraps out of the word
		}
		// Invariant: count is never decremented below zero, and every
		// transition to zero bumps gen in the same CAS.
		if !j.unfinished.CompareAndSwap(w, nw) {
			continue
		}
		if c == d {
			j.q.c.join.Notify(futex.All)
		}
		return d == k
	}
}

// Unfinished returns how many tasks are unfinished now.
// A closed or broken handle reports 0.
func (j *JoinableQueue) Unfinished() int {
	n := 0
	j.q.touch(func() { n = int(j.unfinished.Load() & countMask) })
	return n
}

// Join waits until every task put before it was called is done: it
// returns when the count is zero, or has been zero since Join began. It
// returns ctx's error if ctx ends first, and ErrClosed if the handle is
// closed meanwhile.
func (j *JoinableQueue) Join(ctx context.Context) error {
	var w0 uint64
	if err := j.q.touch(func() { w0 = j.unfinished.Load() }); err != nil {
		return err
	}
	if w0&countMask == 0 {
		return nil
	}
	for {
		done, err := j.joinSlow(ctx, w0)
		if done || err != nil {
			return err
		}
	}
}

// joinSlow waits for the count to reach zero after w0 was loaded; on a
// named segment it sleeps one pollSlice at a time (see Queue.wait) and
// reports done=false when the slice ends first.
func (j *JoinableQueue) joinSlow(ctx context.Context, w0 uint64) (done bool, err error) {
	q := j.q
	if q.c.seg.Pin() != nil {
		return true, ErrClosed
	}
	defer q.c.seg.Unpin()
	if e := q.stop.Load(); e != nil {
		return true, *e
	}
	var deadline time.Time
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
		deadline = time.Now().Add(pollSlice)
	}
	zeroed := func() bool {
		w := j.unfinished.Load()
		return w&countMask == 0 || w>>genShift != w0>>genShift
	}
	err = q.c.join.Wait(ctx, deadline, nil, func() bool { return zeroed() || q.closed.Load() })
	switch {
	case errors.Is(err, shm.ErrClosed), err == nil && q.closed.Load():
		return true, ErrClosed
	case errors.Is(err, futex.ErrTimeout):
		return zeroed(), nil
	}
	return true, err
}

// ---- delegated ----

// Get returns the next message (a copy), as Queue.Get does. Call TaskDone
// when finished with it.
func (j *JoinableQueue) Get(ctx context.Context) ([]byte, error) { return j.q.Get(ctx) }

// TryGet is Queue.TryGet.
func (j *JoinableQueue) TryGet() ([]byte, error) { return j.q.TryGet() }

// GetInto is Queue.GetInto.
func (j *JoinableQueue) GetInto(ctx context.Context, buf []byte) (int, error) {
	return j.q.GetInto(ctx, buf)
}

// TryGetInto is Queue.TryGetInto.
func (j *JoinableQueue) TryGetInto(buf []byte) (int, error) { return j.q.TryGetInto(buf) }

// GetBatch is Queue.GetBatch; each message taken is a task.
func (j *JoinableQueue) GetBatch(ctx context.Context, buf []byte, sizes []int) (int, error) {
	return j.q.GetBatch(ctx, buf, sizes)
}

// WithPeek is Queue.WithPeek; the message is a task.
func (j *JoinableQueue) WithPeek(ctx context.Context, fn func(msg []byte) error) error {
	return j.q.WithPeek(ctx, fn)
}

// Shutdown is Queue.Shutdown. Blocked Joins are not woken by it: tasks may
// still be in progress.
func (j *JoinableQueue) Shutdown() error { return j.q.Shutdown() }

// Close is Queue.Close; a Join blocked on this handle returns ErrClosed.
func (j *JoinableQueue) Close() error { return j.q.Close() }

// Unlink is Queue.Unlink.
func (j *JoinableQueue) Unlink() error { return j.q.Unlink() }

// File is Queue.File.
func (j *JoinableQueue) File() (*os.File, error) { return j.q.File() }

// Len is Queue.Len.
func (j *JoinableQueue) Len() int { return j.q.Len() }

// Cap is Queue.Cap.
func (j *JoinableQueue) Cap() int { return j.q.Cap() }

// MaxMessage is Queue.MaxMessage.
func (j *JoinableQueue) MaxMessage() int { return j.q.MaxMessage() }

// Stats is Queue.Stats.
func (j *JoinableQueue) Stats() Stats { return j.q.Stats() }
