package ringbuf

import (
	"errors"
	"net"

	"github.com/shmkit/shmkit/shm"
)

// Errors of queue operations, usable with errors.Is.
var (
	// ErrFull: TryPut found no room.
	ErrFull = errors.New("ringbuf: queue full")
	// ErrEmpty: TryGet found nothing to read.
	ErrEmpty = errors.New("ringbuf: queue empty")
	// ErrClosed: the handle was closed (Close), or the queue was shut down
	// (Shutdown; for a consumer, also drained). It is the package's one
	// closed sentinel, and it matches net.ErrClosed too.
	ErrClosed error = closedError{}
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
	// ErrInvalid: bad Options or arguments (a WithReserve callback that
	// reports more bytes than it reserved).
	ErrInvalid = errors.New("ringbuf: invalid argument")
	// ErrTaskDone: JoinableQueue.TaskDone called more times than items put.
	ErrTaskDone = errors.New("ringbuf: TaskDone called too many times")
	// ErrPeerDead: the other end of a Pipe died (proven by the kernel).
	ErrPeerDead = errors.New("ringbuf: peer process died")
)

type closedError struct{}

func (closedError) Error() string        { return "ringbuf: closed" }
func (closedError) Is(target error) bool { return target == net.ErrClosed }
