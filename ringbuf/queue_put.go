package ringbuf

import (
	"context"
	"time"
)

// Producing. Each call takes the producer side's turn only for one
// attempt on the ring; when the ring is full it releases the turn, sleeps
// (ready, see ring), and tries again.

// TryPut puts msg if there is room now, else returns ErrFull. After
// Shutdown it returns ErrClosed.
func (q *Queue) TryPut(msg []byte) error {
	_, _, err := q.putOnce(context.Background(), msg)
	return err
}

// Put puts msg, waiting for room until ctx ends (ctx.Err()). After
// Shutdown it returns ErrClosed. A Put that returned nil is received by
// the consumers that drain the queue.
func (q *Queue) Put(ctx context.Context, msg []byte) error {
	for {
		key, retry, err := q.putOnce(ctx, msg)
		if err != ErrFull {
			return err
		}
		if err := q.wait(ctx, true, len(msg), key, retry); err != nil {
			return err
		}
	}
}

// putOnce makes one attempt. On ErrFull it returns the side's wait key.
func (q *Queue) putOnce(ctx context.Context, msg []byte) (key uint64, retry time.Duration, err error) {
	if len(msg) > q.c.maxMsg {
		return 0, 0, ErrTooLarge
	}
	if err = q.enter(ctx, &q.prod); err != nil {
		return 0, 0, err
	}
	defer q.prod.gate.Leave()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	if err = q.r.put(msg); err != nil {
		return q.full(err)
	}
	q.published(1, len(msg))
	return 0, 0, nil
}

// full turns a failed reserve into the caller's result: on ErrFull, the
// wait key (the caller holds the producer turn).
func (q *Queue) full(err error) (uint64, time.Duration, error) {
	if err != ErrFull {
		return 0, 0, q.ringErr(err)
	}
	q.c.stats.add(sFull, 1)
	key, retry := q.r.waitKey(true)
	return key, retry, ErrFull
}

// PutBatch puts every message of msgs, in order, waiting for room as Put
// does. Messages that fit together are published with one store (SPSC)
// and one wakeup. It returns how many were put; those were delivered.
func (q *Queue) PutBatch(ctx context.Context, msgs [][]byte) (int, error) {
	done := 0
	for done < len(msgs) {
		k, key, retry, err := q.putBatchOnce(ctx, msgs[done:])
		done += k
		if err != nil && err != ErrFull {
			return done, err
		}
		if k > 0 {
			continue
		}
		if err := q.wait(ctx, true, len(msgs[done]), key, retry); err != nil {
			return done, err
		}
	}
	return done, nil
}

func (q *Queue) putBatchOnce(ctx context.Context, msgs [][]byte) (k int, key uint64, retry time.Duration, err error) {
	if err = q.enter(ctx, &q.prod); err != nil {
		return 0, 0, 0, err
	}
	defer q.prod.gate.Leave()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	bytes := 0
	for ; k < len(msgs); k++ {
		m := msgs[k]
		if len(m) > q.c.maxMsg {
			err = ErrTooLarge
			break
		}
		buf, rerr := q.r.reserve(len(m))
		if rerr != nil {
			if k == 0 {
				key, retry, err = q.full(rerr)
				return 0, key, retry, err
			}
			if rerr != ErrFull {
				err = q.ringErr(rerr)
			}
			break
		}
		copy(buf, m)
		q.r.stage(len(m))
		bytes += len(m)
	}
	if k > 0 {
		if ferr := q.r.flush(); ferr != nil {
			return 0, 0, 0, q.ringErr(ferr) // none of the staged ones went out
		}
		q.published(k, bytes)
	}
	return k, 0, 0, err
}

// WithReserve waits for room for an n-byte message, as Put does, and
// calls fn with that room in the ring, to write the message in place (no
// copy). fn returns the message's length m <= n, which is then published,
// or an error, which gives the room back and is returned. The room is only
// valid during fn; the handle's producer side is held while fn runs, so
// fn must not call producer methods of the same handle.
func (q *Queue) WithReserve(ctx context.Context, n int, fn func(room []byte) (int, error)) error {
	if n < 0 {
		return ErrInvalid
	}
	if n > q.c.maxMsg {
		return ErrTooLarge
	}
	for {
		key, retry, err := q.reserveOnce(ctx, n, fn)
		if err != ErrFull {
			return err
		}
		if err := q.wait(ctx, true, n, key, retry); err != nil {
			return err
		}
	}
}

// callbackError keeps a callback's own ErrFull apart from the ring's.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

func (q *Queue) reserveOnce(ctx context.Context, n int, fn func([]byte) (int, error)) (key uint64, retry time.Duration, err error) {
	if err = q.enter(ctx, &q.prod); err != nil {
		return 0, 0, err
	}
	defer q.prod.gate.Leave()
	if q.guarded {
		defer q.catch(&err, setPanicOnFault())
	}
	room, err := q.r.reserve(n)
	if err != nil {
		return q.full(err)
	}
	done := false
	defer func() {
		if !done {
			q.r.abandon() // fn failed or panicked
		}
	}()
	m, ferr := fn(room)
	if ferr != nil {
		if ferr == ErrFull {
			ferr = callbackError{ferr}
		}
		return 0, 0, ferr
	}
	if m < 0 || m > n {
		return 0, 0, ErrInvalid
	}
	done = true
	if err = q.r.commit(m); err != nil {
		return 0, 0, q.ringErr(err)
	}
	q.published(1, m)
	return 0, 0, nil
}
