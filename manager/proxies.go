package manager

import (
	"context"
	"errors"
	"fmt"
)

// Proxies name an object on the server; any client may use the same
// name. Dict, List, Value, Lock, RLock and Event are created empty by
// their first use; Queue, Semaphore and Barrier by their constructor,
// which fixes their parameters (a later constructor call with other
// parameters gets the existing object). Values are any data the CBOR codec
// encodes (numbers, strings, byte slices, slices, maps, structs of those);
// Get-like methods decode into out, a pointer.

type proxy struct {
	c    *Client
	typ  uint8
	name string
}

func (p proxy) do(ctx context.Context, rq request) (response, error) {
	rq.Kind, rq.Obj = p.typ, p.name
	return p.c.call(ctx, &rq)
}

// ---- Dict ----

// Dict is a shared map from strings to values (Python's manager dict).
type Dict struct{ p proxy }

// Dict returns the dict named name.
func (c *Client) Dict(name string) *Dict { return &Dict{proxy{c, tDict, name}} }

// Namespace is a Dict used as a set of named attributes (Python's
// Namespace: ns.x = 1 is ns.Set(ctx, "x", 1)).
func (c *Client) Namespace(name string) *Dict { return &Dict{proxy{c, tDict, "namespace:" + name}} }

// Get decodes the value of key into out; ErrNotFound if absent.
func (d *Dict) Get(ctx context.Context, key string, out any) error {
	rs, err := d.p.do(ctx, request{Op: opGet, Key: key})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// Set sets key to v.
func (d *Dict) Set(ctx context.Context, key string, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = d.p.do(ctx, request{Op: opSet, Key: key, Val: b})
	return err
}

// Delete removes key and reports whether it was present.
func (d *Dict) Delete(ctx context.Context, key string) (bool, error) {
	rs, err := d.p.do(ctx, request{Op: opDelete, Key: key})
	return rs.OK, err
}

// Len returns the number of keys.
func (d *Dict) Len(ctx context.Context) (int, error) {
	rs, err := d.p.do(ctx, request{Op: opLen})
	return int(rs.N), err
}

// Keys returns the keys, sorted.
func (d *Dict) Keys(ctx context.Context) ([]string, error) {
	rs, err := d.p.do(ctx, request{Op: opKeys})
	return rs.Keys, err
}

// Items calls fn for every key, sorted, with a decoder of its value, in
// one snapshot taken atomically on the server.
func (d *Dict) Items(ctx context.Context, fn func(key string, decode func(out any) error) error) error {
	rs, err := d.p.do(ctx, request{Op: opItems})
	if err != nil {
		return err
	}
	if len(rs.Keys) != len(rs.Vals) {
		return fmt.Errorf("%w: %d keys, %d values", ErrProtocol, len(rs.Keys), len(rs.Vals))
	}
	for i, k := range rs.Keys {
		v := rs.Vals[i]
		if err := fn(k, func(out any) error { return decodeValue(v, out) }); err != nil {
			return err
		}
	}
	return nil
}

func decodeValue(b []byte, out any) error { return decode(b, out) }

// Update sets every key of kv, atomically.
func (d *Dict) Update(ctx context.Context, kv map[string]any) error {
	rq := request{Op: opUpdate}
	for k, v := range kv {
		b, err := encode(v)
		if err != nil {
			return err
		}
		rq.Keys = append(rq.Keys, k)
		rq.Vals = append(rq.Vals, b)
	}
	_, err := d.p.do(ctx, rq)
	return err
}

// Pop removes key and decodes its value into out; ErrNotFound if absent.
func (d *Dict) Pop(ctx context.Context, key string, out any) error {
	rs, err := d.p.do(ctx, request{Op: opPop, Key: key})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// SetDefault sets key to v if it is absent, decodes the value now stored
// into out, and reports whether it set it.
func (d *Dict) SetDefault(ctx context.Context, key string, v, out any) (bool, error) {
	b, err := encode(v)
	if err != nil {
		return false, err
	}
	rs, err := d.p.do(ctx, request{Op: opSetDefault, Key: key, Val: b})
	if err != nil {
		return false, err
	}
	return rs.OK, decode(rs.Val, out)
}

// CompareAndSwap sets key to v if its value equals old (old nil: if key
// is absent), and reports whether it did. Values compare by their
// deterministic encoding.
func (d *Dict) CompareAndSwap(ctx context.Context, key string, old, v any) (bool, error) {
	var ob []byte
	if old != nil {
		var err error
		if ob, err = encode(old); err != nil {
			return false, err
		}
	}
	b, err := encode(v)
	if err != nil {
		return false, err
	}
	rs, err := d.p.do(ctx, request{Op: opCAS, Key: key, Old: ob, Val: b})
	return rs.OK, err
}

// Add adds delta to the integer at key (absent: 0), atomically on the
// server, and returns the sum: Python's d[k] += 1 without its race.
// ErrType if the value is not an integer.
func (d *Dict) Add(ctx context.Context, key string, delta int64) (int64, error) {
	rs, err := d.p.do(ctx, request{Op: opAdd, Key: key, N: delta})
	return rs.N, err
}

// ---- List ----

// List is a shared list of values.
type List struct{ p proxy }

// List returns the list named name.
func (c *Client) List(name string) *List { return &List{proxy{c, tList, name}} }

// Append appends v.
func (l *List) Append(ctx context.Context, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = l.p.do(ctx, request{Op: opAppend, Val: b})
	return err
}

// Extend appends every value of vs, atomically.
func (l *List) Extend(ctx context.Context, vs ...any) error {
	rq := request{Op: opExtend}
	for _, v := range vs {
		b, err := encode(v)
		if err != nil {
			return err
		}
		rq.Vals = append(rq.Vals, b)
	}
	_, err := l.p.do(ctx, rq)
	return err
}

// Get decodes element i (negative: from the end) into out.
func (l *List) Get(ctx context.Context, i int, out any) error {
	rs, err := l.p.do(ctx, request{Op: opGet, N: int64(i)})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// Set sets element i to v.
func (l *List) Set(ctx context.Context, i int, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = l.p.do(ctx, request{Op: opSet, N: int64(i), Val: b})
	return err
}

// Insert inserts v before element i (clamped, as in Python).
func (l *List) Insert(ctx context.Context, i int, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = l.p.do(ctx, request{Op: opInsert, N: int64(i), Val: b})
	return err
}

// Pop removes element i (-1: the last) and decodes it into out.
func (l *List) Pop(ctx context.Context, i int, out any) error {
	rs, err := l.p.do(ctx, request{Op: opPop, N: int64(i)})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// Remove removes the first element equal to v; ErrNotFound if none.
func (l *List) Remove(ctx context.Context, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = l.p.do(ctx, request{Op: opRemove, Val: b})
	return err
}

// Len returns the length.
func (l *List) Len(ctx context.Context) (int, error) {
	rs, err := l.p.do(ctx, request{Op: opLen})
	return int(rs.N), err
}

// Slice returns elements lo to hi (Python's l[lo:hi], indices clamped and
// negative from the end), each decoded by fn's decoder.
func (l *List) Slice(ctx context.Context, lo, hi int, fn func(i int, decode func(out any) error) error) error {
	hb, _ := encode(int64(hi))
	rs, err := l.p.do(ctx, request{Op: opSlice, N: int64(lo), Val: hb})
	if err != nil {
		return err
	}
	for i, v := range rs.Vals {
		if err := fn(i, func(out any) error { return decodeValue(v, out) }); err != nil {
			return err
		}
	}
	return nil
}

// ---- Value ----

// Value is one shared value.
type Value struct{ p proxy }

// Value returns the value named name (no value until the first Set or Add).
func (c *Client) Value(name string) *Value { return &Value{proxy{c, tValue, name}} }

// Get decodes the value into out; ErrNotFound before the first Set.
func (v *Value) Get(ctx context.Context, out any) error {
	rs, err := v.p.do(ctx, request{Op: opGet})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// Set sets the value.
func (v *Value) Set(ctx context.Context, x any) error {
	b, err := encode(x)
	if err != nil {
		return err
	}
	_, err = v.p.do(ctx, request{Op: opSet, Val: b})
	return err
}

// Add adds delta to the integer value (none yet: 0) and returns the sum.
func (v *Value) Add(ctx context.Context, delta int64) (int64, error) {
	rs, err := v.p.do(ctx, request{Op: opAdd, N: delta})
	return rs.N, err
}

// CompareAndSwap sets the value to x if it equals old (nil: no value yet).
func (v *Value) CompareAndSwap(ctx context.Context, old, x any) (bool, error) {
	var ob []byte
	if old != nil {
		var err error
		if ob, err = encode(old); err != nil {
			return false, err
		}
	}
	b, err := encode(x)
	if err != nil {
		return false, err
	}
	rs, err := v.p.do(ctx, request{Op: opCAS, Old: ob, Val: b})
	return rs.OK, err
}

// ---- Queue ----

// Queue is a shared FIFO queue that also counts unfinished tasks
// (JoinableQueue: TaskDone, Join).
type Queue struct{ p proxy }

// Queue returns the queue named name, creating it with room for capacity
// messages (0: unbounded) if it does not exist.
func (c *Client) Queue(ctx context.Context, name string, capacity int) (*Queue, error) {
	q := &Queue{proxy{c, tQueue, name}}
	if capacity < 0 {
		return nil, ErrInvalid
	}
	_, err := q.p.do(ctx, request{Op: opCreate, N: int64(capacity)})
	return q, err
}

// Put appends v, waiting for room until ctx ends. A Put whose ctx ended
// while its request was on its way may still have been put.
func (q *Queue) Put(ctx context.Context, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = q.p.do(ctx, request{Op: opPut, Val: b})
	return err
}

// TryPut appends v if there is room now, else ErrFull.
func (q *Queue) TryPut(ctx context.Context, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	_, err = q.p.do(ctx, request{Op: opTryPut, Val: b})
	return err
}

// Get removes the head, waiting until ctx ends, and decodes it into out.
// A message the server handed out after ctx ended is put back at the head.
func (q *Queue) Get(ctx context.Context, out any) error {
	rs, err := q.p.do(ctx, request{Op: opGet})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// TryGet removes the head if there is one, else ErrEmpty.
func (q *Queue) TryGet(ctx context.Context, out any) error {
	rs, err := q.p.do(ctx, request{Op: opTryGet})
	if err != nil {
		return err
	}
	return decode(rs.Val, out)
}

// Len returns the number of messages queued.
func (q *Queue) Len(ctx context.Context) (int, error) {
	rs, err := q.p.do(ctx, request{Op: opLen})
	return int(rs.N), err
}

// TaskDone marks one message got as processed.
func (q *Queue) TaskDone(ctx context.Context) error {
	_, err := q.p.do(ctx, request{Op: opTaskDone})
	return err
}

// Join waits until every message put has been marked done.
func (q *Queue) Join(ctx context.Context) error {
	_, err := q.p.do(ctx, request{Op: opJoin})
	return err
}

// ---- Lock, RLock ----

// Lock is a mutual-exclusion lock held by a client. When the holder's
// connection drops (its process died), the server releases it and its
// next holder's Acquire returns ErrOwnerDead, holding the lock.
type Lock struct{ p proxy }

// Lock returns the lock named name.
func (c *Client) Lock(name string) *Lock { return &Lock{proxy{c, tLock, name}} }

// RLock returns the reentrant lock named name: its holder may acquire it
// again, and must release it as many times.
func (c *Client) RLock(name string) *Lock { return &Lock{proxy{c, tRLock, name}} }

// Acquire waits for the lock until ctx ends. ErrOwnerDead: acquired, but
// the previous holder disconnected holding it.
func (l *Lock) Acquire(ctx context.Context) error {
	_, err := l.p.do(ctx, request{Op: opAcquire})
	return err
}

// TryAcquire takes the lock if it is free now and reports whether it did
// (with ErrOwnerDead as Acquire).
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	rs, err := l.p.do(ctx, request{Op: opTryAcquire})
	if errors.Is(err, ErrOwnerDead) {
		return true, err
	}
	return rs.OK, err
}

// Release releases the lock; ErrNotOwner if this client does not hold it.
func (l *Lock) Release(ctx context.Context) error {
	_, err := l.p.do(ctx, request{Op: opRelease})
	return err
}

// ---- Semaphore ----

// Semaphore is a counting semaphore (not owned: a client that dies does
// not give back what it acquired).
type Semaphore struct{ p proxy }

// Semaphore returns the semaphore named name, creating it with value n.
func (c *Client) Semaphore(ctx context.Context, name string, n int) (*Semaphore, error) {
	s := &Semaphore{proxy{c, tSemaphore, name}}
	_, err := s.p.do(ctx, request{Op: opCreate, N: int64(n)})
	return s, err
}

// Acquire decrements the value, waiting while it is zero until ctx ends.
func (s *Semaphore) Acquire(ctx context.Context) error {
	_, err := s.p.do(ctx, request{Op: opAcquire})
	return err
}

// TryAcquire decrements the value if it is positive, and reports whether.
func (s *Semaphore) TryAcquire(ctx context.Context) (bool, error) {
	rs, err := s.p.do(ctx, request{Op: opTryAcquire})
	return rs.OK, err
}

// Release increments the value.
func (s *Semaphore) Release(ctx context.Context) error {
	_, err := s.p.do(ctx, request{Op: opRelease})
	return err
}

// ---- Event ----

// Event is a flag that callers wait for.
type Event struct{ p proxy }

// Event returns the event named name (initially clear).
func (c *Client) Event(name string) *Event { return &Event{proxy{c, tEvent, name}} }

// Set sets the flag and releases every waiter.
func (e *Event) Set(ctx context.Context) error {
	_, err := e.p.do(ctx, request{Op: opSet})
	return err
}

// Clear clears the flag.
func (e *Event) Clear(ctx context.Context) error {
	_, err := e.p.do(ctx, request{Op: opClear})
	return err
}

// IsSet reports the flag.
func (e *Event) IsSet(ctx context.Context) (bool, error) {
	rs, err := e.p.do(ctx, request{Op: opIsSet})
	return rs.OK, err
}

// Wait waits until the flag is set or ctx ends.
func (e *Event) Wait(ctx context.Context) error {
	_, err := e.p.do(ctx, request{Op: opWait})
	return err
}

// ---- Barrier ----

// Barrier releases its parties together once all of them wait.
type Barrier struct{ p proxy }

// Barrier returns the barrier named name, creating it for parties.
func (c *Client) Barrier(ctx context.Context, name string, parties int) (*Barrier, error) {
	b := &Barrier{proxy{c, tBarrier, name}}
	_, err := b.p.do(ctx, request{Op: opCreate, N: int64(parties)})
	return b, err
}

// Wait waits for every party and returns this party's arrival index. A
// party whose ctx ends breaks the barrier: the others get ErrBroken.
func (b *Barrier) Wait(ctx context.Context) (int, error) {
	rs, err := b.p.do(ctx, request{Op: opWait})
	return int(rs.N), err
}

// Abort breaks the barrier.
func (b *Barrier) Abort(ctx context.Context) error {
	_, err := b.p.do(ctx, request{Op: opAbort})
	return err
}

// Reset mends a broken barrier for a new round.
func (b *Barrier) Reset(ctx context.Context) error {
	_, err := b.p.do(ctx, request{Op: opReset})
	return err
}
