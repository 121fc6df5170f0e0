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
	j.unfinished.Add(1)
	err := j.q.Put(ctx, msg)
	if err != nil {
		j.done(1)
	}
	return err
}

// TryPut puts msg as a new task if there is room now, else returns ErrFull.
func (j *JoinableQueue) TryPut(msg []byte) error {
	j.unfinished.Add(1)
	err := j.q.TryPut(msg)
	if err != nil {
		j.done(1)
	}
	return err
}

// PutBatch puts msgs as tasks, as Queue.PutBatch does, and returns how
// many were put.
func (j *JoinableQueue) PutBatch(ctx context.Context, msgs [][]byte) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	j.unfinished.Add(uint64(len(msgs)))
	n, err := j.q.PutBatch(ctx, msgs)
	if n < len(msgs) {
		j.done(uint64(len(msgs) - n))
	}
	return n, err
}

// ---- tasks ----

// TaskDone marks one task as finished. It returns ErrTaskDone, changing
// nothing, if no task is unfinished.
func (j *JoinableQueue) TaskDone() error {
	if !j.done(1) {
		return ErrTaskDone
	}
	return nil
}

// done subtracts up to k from the count, never below zero, and wakes the
// joiners if it reaches zero. It reports whether it could subtract all k.
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
func (j *JoinableQueue) Unfinished() int { return int(j.unfinished.Load() & countMask) }

// Join waits until every task put before it was called is done: it
// returns when the count is zero, or has been zero since Join began. It
// returns ctx's error if ctx ends first, and ErrClosed if the handle is
// closed meanwhile.
func (j *JoinableQueue) Join(ctx context.Context) error {
	w0 := j.unfinished.Load()
	if w0&countMask == 0 {
		return nil
	}
	return j.joinSlow(ctx, w0)
}

func (j *JoinableQueue) joinSlow(ctx context.Context, w0 uint64) error {
	seg := j.q.c.seg
	if err := seg.Pin(); err != nil {
		return ErrClosed
	}
	defer seg.Unpin()
	err := j.q.c.join.Wait(ctx, time.Time{}, nil, func() bool {
		w := j.unfinished.Load()
		return w&countMask == 0 || w>>genShift != w0>>genShift || j.q.closed.Load()
	})
	if errors.Is(err, shm.ErrClosed) || err == nil && j.q.closed.Load() {
		return ErrClosed
	}
	return err
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
