package ringbuf

import (
	"errors"

	"github.com/shmkit/shmkit/shm"
)

// Errors of queue operations, usable with errors.Is.
var (
	// ErrFull: TryPut (or a Put whose context ended) found no room.
	ErrFull = errors.New("ringbuf: queue full")
	// ErrEmpty: TryGet found nothing to read.
	ErrEmpty = errors.New("ringbuf: queue empty")
	// ErrClosed: the queue was closed; for a consumer, also drained.
	ErrClosed = errors.New("ringbuf: queue closed")
	// ErrTooLarge: a message longer than the queue's MaxMessage.
	ErrTooLarge = errors.New("ringbuf: message too large")
	// ErrShortBuffer: GetInto's buffer cannot hold the next message; the
	// message stays in the queue.
	ErrShortBuffer = errors.New("ringbuf: buffer too short for message")
	// ErrCorrupt: the ring's shared state is impossible (a counter beyond
	// the other, a length beyond the capacity, a bad record header). The
	// queue handle is unusable from then on. It also matches shm.ErrCorrupt.
	ErrCorrupt = shm.ErrCorrupt
	// ErrRole: an SPSC queue already has a live producer (or consumer) in
	// another handle; a second one would corrupt it.
	ErrRole = errors.New("ringbuf: SPSC queue side taken by another live participant")
	// ErrInvalid: bad Options, or a call out of sequence (Commit without
	// Reserve, Release without Peek).
	ErrInvalid = errors.New("ringbuf: invalid argument")
	// ErrTaskDone: JoinableQueue.TaskDone called more times than items put.
	ErrTaskDone = errors.New("ringbuf: TaskDone called too many times")
	// ErrPeerDead: the other end of a Pipe died (proven by the kernel).
	ErrPeerDead = errors.New("ringbuf: peer process died")
)
