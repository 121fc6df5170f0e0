package ringbuf

import (
	"context"
	"sync"
)

// Typed is a Queue of values of T, encoded with a Codec. It is safe for
// concurrent use; it keeps a few encode and decode buffers for reuse, so
// with a codec that does not allocate (Binary) neither does Put or Get.
// No lock is held while a call blocks on the queue.
//
// A message that fails to decode is consumed all the same: Get returns an
// error matching ErrDecode, and the next Get moves on.
type Typed[T any] struct {
	q     *Queue
	codec Codec[T]
	enc   bufStack // encode buffers
	dec   bufStack // receive buffers
}

// NewTyped returns a typed view of q. Any number of views, in any
// processes, may share a queue, provided they agree on T and the codec.
func NewTyped[T any](q *Queue, c Codec[T]) *Typed[T] {
	return &Typed[T]{q: q, codec: c}
}

// Queue returns the underlying queue.
func (t *Typed[T]) Queue() *Queue { return t.q }

// Put encodes v and puts it, waiting for room as Queue.Put does. An
// encoding longer than the queue's MaxMessage returns ErrTooLarge.
func (t *Typed[T]) Put(ctx context.Context, v T) error {
	b, err := t.encode(v)
	if err == nil {
		err = t.q.Put(ctx, b)
	}
	t.enc.put(b, t.q.c.maxMsg)
	return err
}

// TryPut is Put without waiting: ErrFull if there is no room now.
func (t *Typed[T]) TryPut(v T) error {
	b, err := t.encode(v)
	if err == nil {
		err = t.q.TryPut(b)
	}
	t.enc.put(b, t.q.c.maxMsg)
	return err
}

func (t *Typed[T]) encode(v T) ([]byte, error) {
	b, err := t.codec.Append(t.enc.get()[:0], v)
	if err != nil {
		return b, err
	}
	if len(b) > t.q.c.maxMsg {
		return b, ErrTooLarge
	}
	return b, nil
}

// Get waits for the next message, as Queue.Get does, and decodes it.
func (t *Typed[T]) Get(ctx context.Context) (T, error) {
	return t.get(func(buf []byte) (int, error) { return t.q.GetInto(ctx, buf) })
}

// TryGet decodes the next message if there is one, else returns ErrEmpty.
func (t *Typed[T]) TryGet() (T, error) {
	return t.get(t.q.TryGetInto)
}

// get receives into a reused buffer. When a message does not fit it stays
// queued, and the buffer doubles (up to MaxMessage) until one does: memory
// stays within twice the largest message, not MaxMessage.
func (t *Typed[T]) get(recv func([]byte) (int, error)) (T, error) {
	var z T
	buf := t.dec.get()
	if first := min(minRecvBuf, t.q.c.maxMsg); cap(buf) < first {
		buf = make([]byte, first)
	}
	buf = buf[:cap(buf)]
	n, err := recv(buf)
	for err == ErrShortBuffer && len(buf) < t.q.c.maxMsg {
		buf = make([]byte, min(2*len(buf), t.q.c.maxMsg))
		n, err = recv(buf)
	}
	if err != nil {
		t.dec.put(buf, t.q.c.maxMsg)
		return z, err
	}
	v, err := t.codec.Decode(buf[:n])
	t.dec.put(buf, t.q.c.maxMsg)
	if err != nil {
		return z, err
	}
	return v, nil
}

const (
	minRecvBuf = 512
	keepBufs   = 8 // buffers kept per direction: enough for a few goroutines
)

// bufStack keeps byte buffers for reuse. Each call takes its own, so no
// lock is held while a call blocks.
type bufStack struct {
	mu   sync.Mutex
	bufs [][]byte
}

func (s *bufStack) get() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.bufs)
	if n == 0 {
		return nil
	}
	b := s.bufs[n-1]
	s.bufs[n-1] = nil
	s.bufs = s.bufs[:n-1]
	return b
}

// put returns b for reuse unless it is far larger than any message (an
// encoding that was refused as too large) or enough are kept.
func (s *bufStack) put(b []byte, maxMsg int) {
	if b == nil || cap(b) > 2*max(maxMsg, minRecvBuf) {
		return
	}
	s.mu.Lock()
	if len(s.bufs) < keepBufs {
		s.bufs = append(s.bufs, b[:0])
	}
	s.mu.Unlock()
}
