package ringbuf

import (
	"context"
	"time"
)

// Consuming. As for producing, each call takes the consumer side's turn
// only for one attempt on the ring.

// TryGet returns the next message (a copy) if there is one, else ErrEmpty;
// ErrClosed once the queue is shut down and drained.
func (q *Queue) TryGet() ([]byte, error) {
	out, _, _, _, err := q.getOnce(context.Background(), nil, true)
	return out, err
}

// Get returns the next message (a copy), waiting until there is one, the
// queue is shut down and drained (ErrClosed), or ctx ends.
func (q *Queue) Get(ctx context.Context) ([]byte, error) {
	out, _, err := q.get(ctx, nil, true)
	return out, err
}

// TryGetInto is TryGet into buf; it does not allocate.
func (q *Queue) TryGetInto(buf []byte) (int, error) {
	_, n, _, _, err := q.getOnce(context.Background(), buf, false)
	return n, err
}

// GetInto copies the next message into buf and returns its length. It does
// not allocate. If buf is too short it returns ErrShortBuffer and leaves
// the message in the queue.
func (q *Queue) GetInto(ctx context.Context, buf []byte) (int, error) {
	_, n, err := q.get(ctx, buf, false)
	return n, err
}

func (q *Queue) get(ctx context.Context, buf []byte, alloc bool) ([]byte, int, error) {
	for {
		out, n, key, retry, err := q.getOnce(ctx, buf, alloc)
		if err != ErrEmpty {
			return out, n, err
		}
		if err := q.wait(ctx, false, 0, key, retry); err != nil {
			return nil, 0, err
		}
	}
}

func (q *Queue) getOnce(ctx context.Context, buf []byte, alloc bool) (out []byte, n int, key uint64, retry time.Duration, err error) {
	if err = q.enter(ctx, &q.cons); err != nil {
		return nil, 0, 0, 0, err
	}
	defer q.cons.gate.Leave()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	if alloc {
		var msg []byte
		if msg, err = q.r.next(-1); err == nil {
			out = make([]byte, len(msg))
			n = copy(out, msg)
			q.r.consume()
		}
	} else {
		n, err = q.r.getInto(buf)
	}
	if err != nil {
		key, retry, err = q.empty(err)
		return nil, 0, key, retry, err
	}
	q.consumed(1, n)
	return out, n, 0, 0, nil
}

// empty turns a failed next into the caller's result: on ErrEmpty, the
// wait key (the caller holds the consumer turn).
func (q *Queue) empty(err error) (uint64, time.Duration, error) {
	if err != ErrClosed && err != ErrEmpty {
		return 0, 0, q.ringErr(err)
	}
	// Caught up: publish what was consumed (SPSC publishes lazily) and
	// wake a producer that waits for the room, before this call sleeps.
	if q.r.release(false) {
		q.notify(q.c.notFull, 1)
	}
	if err == ErrClosed {
		return 0, 0, err
	}
	q.c.stats.add(sEmpty, 1)
	key, retry := q.r.waitKey(false)
	return key, retry, ErrEmpty
}

// GetBatch waits for at least one message, then takes as many as are
// queued and fit, copying them back to back into buf and their lengths
// into sizes. It returns how many it took; it does not allocate. The space
// they held is freed with one store (SPSC) and at most one wakeup.
func (q *Queue) GetBatch(ctx context.Context, buf []byte, sizes []int) (int, error) {
	if len(sizes) == 0 {
		return 0, ErrInvalid
	}
	for {
		k, key, retry, err := q.getBatchOnce(ctx, buf, sizes)
		if err != ErrEmpty {
			return k, err
		}
		if err := q.wait(ctx, false, 0, key, retry); err != nil {
			return 0, err
		}
	}
}

func (q *Queue) getBatchOnce(ctx context.Context, buf []byte, sizes []int) (k int, key uint64, retry time.Duration, err error) {
	if err = q.enter(ctx, &q.cons); err != nil {
		return 0, 0, 0, err
	}
	defer q.cons.gate.Leave()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	used := 0
	for k < len(sizes) {
		msg, nerr := q.r.next(len(buf) - used)
		if nerr != nil {
			if k == 0 {
				key, retry, err = q.empty(nerr)
				return 0, key, retry, err
			}
			if nerr != ErrEmpty && nerr != ErrShortBuffer && nerr != ErrClosed {
				err = q.ringErr(nerr) // after the k taken, which are the caller's
			}
			break
		}
		copy(buf[used:], msg)
		sizes[k] = len(msg)
		used += len(msg)
		q.r.consume()
		k++
	}
	q.consumed(k, used)
	return k, 0, 0, err
}

// WithPeek waits for the next message, as Get does, and calls fn with it
// in place in the ring (no copy). The message is consumed when fn returns
// (or panics), whatever fn returns; WithPeek returns fn's error. msg is
// only valid during fn; the handle's consumer side is held while fn runs,
// so fn must not call consumer methods of the same handle.
func (q *Queue) WithPeek(ctx context.Context, fn func(msg []byte) error) error {
	for {
		key, retry, err := q.peekOnce(ctx, fn)
		if err != ErrEmpty {
			return err
		}
		if err := q.wait(ctx, false, 0, key, retry); err != nil {
			return err
		}
	}
}

func (q *Queue) peekOnce(ctx context.Context, fn func([]byte) error) (key uint64, retry time.Duration, err error) {
	if err = q.enter(ctx, &q.cons); err != nil {
		return 0, 0, err
	}
	defer q.cons.gate.Leave()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	msg, err := q.r.next(-1)
	if err != nil {
		return q.empty(err)
	}
	defer func() {
		q.r.consume()
		q.consumed(1, len(msg))
	}()
	if err = fn(msg); err == ErrEmpty {
		err = callbackError{err}
	}
	return 0, 0, err
}
