package manager

// Typed forms of the proxies, for code that keeps one type of value in an
// object: Get returns the value instead of decoding into a pointer, and
// Set takes only a V. They are the untyped proxies underneath (same
// object, same wire), so a typed and an untyped handle may share a name.
// Go methods cannot take type parameters, hence constructors, not
// Client methods.

import (
	"context"
	"iter"
)

// DictOf is a Dict whose values are V. The embedded Dict's other
// methods (Delete, Len, Keys, Add, Update) work as they do there.
type DictOf[V any] struct{ *Dict }

// NewDictOf returns the typed proxy of dict name.
func NewDictOf[V any](c *Client, name string) DictOf[V] { return DictOf[V]{c.Dict(name)} }

// Get returns key's value; ErrNotFound if absent, ErrType if it is not a V.
func (d DictOf[V]) Get(ctx context.Context, key string) (V, error) {
	var v V
	err := d.Dict.Get(ctx, key, &v)
	return v, err
}

// Set sets key to v.
func (d DictOf[V]) Set(ctx context.Context, key string, v V) error { return d.Dict.Set(ctx, key, v) }

// Pop removes key and returns its value; ErrNotFound if absent.
func (d DictOf[V]) Pop(ctx context.Context, key string) (V, error) {
	var v V
	err := d.Dict.Pop(ctx, key, &v)
	return v, err
}

// SetDefault sets key to v if absent and returns the value now stored,
// and whether it set it.
func (d DictOf[V]) SetDefault(ctx context.Context, key string, v V) (V, bool, error) {
	var got V
	set, err := d.Dict.SetDefault(ctx, key, v, &got)
	return got, set, err
}

// CompareAndSwap sets key to v if its value encodes as old does.
func (d DictOf[V]) CompareAndSwap(ctx context.Context, key string, old, v V) (bool, error) {
	return d.Dict.CompareAndSwap(ctx, key, old, v)
}

// Items returns one snapshot of the dict, sorted by key, as a sequence;
// a value that is not a V ends it with that error (and a zero V).
func (d DictOf[V]) Items(ctx context.Context) (iter.Seq2[string, V], error) {
	type kv struct {
		k string
		v V
	}
	var all []kv
	err := d.Dict.Items(ctx, func(k string, dec func(any) error) error {
		var v V
		if err := dec(&v); err != nil {
			return err
		}
		all = append(all, kv{k, v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func(yield func(string, V) bool) {
		for _, e := range all {
			if !yield(e.k, e.v) {
				return
			}
		}
	}, nil
}

// QueueOf is a Queue of T.
type QueueOf[T any] struct{ *Queue }

// NewQueueOf returns the typed proxy of queue name, creating it with
// capacity as Client.Queue does.
func NewQueueOf[T any](ctx context.Context, c *Client, name string, capacity int) (QueueOf[T], error) {
	q, err := c.Queue(ctx, name, capacity)
	return QueueOf[T]{q}, err
}

// Put appends v, waiting for room until ctx ends.
func (q QueueOf[T]) Put(ctx context.Context, v T) error { return q.Queue.Put(ctx, v) }

// TryPut appends v if there is room, else ErrFull.
func (q QueueOf[T]) TryPut(ctx context.Context, v T) error { return q.Queue.TryPut(ctx, v) }

// Get removes and returns the head, waiting until ctx ends.
func (q QueueOf[T]) Get(ctx context.Context) (T, error) {
	var v T
	err := q.Queue.Get(ctx, &v)
	return v, err
}

// TryGet removes and returns the head if there is one, else ErrEmpty.
func (q QueueOf[T]) TryGet(ctx context.Context) (T, error) {
	var v T
	err := q.Queue.TryGet(ctx, &v)
	return v, err
}

// ValueOf is a Value holding a T.
type ValueOf[T any] struct{ *Value }

// NewValueOf returns the typed proxy of value name.
func NewValueOf[T any](c *Client, name string) ValueOf[T] { return ValueOf[T]{c.Value(name)} }

// Get returns the value; ErrNotFound before the first Set.
func (v ValueOf[T]) Get(ctx context.Context) (T, error) {
	var x T
	err := v.Value.Get(ctx, &x)
	return x, err
}

// Set stores x.
func (v ValueOf[T]) Set(ctx context.Context, x T) error { return v.Value.Set(ctx, x) }

// CompareAndSwap stores x if the value encodes as old does.
func (v ValueOf[T]) CompareAndSwap(ctx context.Context, old, x T) (bool, error) {
	return v.Value.CompareAndSwap(ctx, old, x)
}

// ListOf is a List of T.
type ListOf[T any] struct{ *List }

// NewListOf returns the typed proxy of list name.
func NewListOf[T any](c *Client, name string) ListOf[T] { return ListOf[T]{c.List(name)} }

// Append appends v.
func (l ListOf[T]) Append(ctx context.Context, v T) error { return l.List.Append(ctx, v) }

// Extend appends vs in one call.
func (l ListOf[T]) Extend(ctx context.Context, vs ...T) error {
	anys := make([]any, len(vs))
	for i, v := range vs {
		anys[i] = v
	}
	return l.List.Extend(ctx, anys...)
}

// Get returns element i (negative: from the end).
func (l ListOf[T]) Get(ctx context.Context, i int) (T, error) {
	var v T
	err := l.List.Get(ctx, i, &v)
	return v, err
}

// Set replaces element i.
func (l ListOf[T]) Set(ctx context.Context, i int, v T) error { return l.List.Set(ctx, i, v) }

// Insert inserts v before element i.
func (l ListOf[T]) Insert(ctx context.Context, i int, v T) error { return l.List.Insert(ctx, i, v) }

// Pop removes and returns element i (-1: the last).
func (l ListOf[T]) Pop(ctx context.Context, i int) (T, error) {
	var v T
	err := l.List.Pop(ctx, i, &v)
	return v, err
}

// Remove removes the first element that encodes as v does.
func (l ListOf[T]) Remove(ctx context.Context, v T) error { return l.List.Remove(ctx, v) }

// Slice returns elements lo to hi (Python's l[lo:hi]).
func (l ListOf[T]) Slice(ctx context.Context, lo, hi int) ([]T, error) {
	var out []T
	err := l.List.Slice(ctx, lo, hi, func(_ int, dec func(any) error) error {
		var v T
		if err := dec(&v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
