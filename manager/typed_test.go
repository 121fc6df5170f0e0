package manager

import (
	"errors"
	"slices"
	"testing"

	"github.com/shmkit/shmkit/internal/testutil"
)

// TestTyped: the typed forms return their values, share objects with the
// untyped proxies, and report a value of another type as ErrType.
func TestTyped(t *testing.T) {
	_, addr := serve(t, "shm", Options{})
	c := dial(t, addr)
	ctx := testutil.Context(t)

	type point struct{ X, Y int }
	d := NewDictOf[point](c, "pts")
	if err := d.Set(ctx, "a", point{1, 2}); err != nil {
		t.Fatal(err)
	}
	if p, err := d.Get(ctx, "a"); err != nil || p != (point{1, 2}) {
		t.Fatalf("Get = %v, %v", p, err)
	}
	if got, set, err := d.SetDefault(ctx, "a", point{9, 9}); err != nil || set || got != (point{1, 2}) {
		t.Fatalf("SetDefault on a present key = %v, %v, %v", got, set, err)
	}
	if ok, err := d.CompareAndSwap(ctx, "a", point{1, 2}, point{3, 4}); err != nil || !ok {
		t.Fatalf("CompareAndSwap = %v, %v", ok, err)
	}
	d.Set(ctx, "b", point{5, 6})
	items, err := d.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, v := range items {
		keys = append(keys, k)
		if k == "a" && v != (point{3, 4}) {
			t.Fatalf("item a = %v", v)
		}
	}
	if !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("keys %v", keys)
	}
	if p, err := d.Pop(ctx, "b"); err != nil || p != (point{5, 6}) {
		t.Fatalf("Pop = %v, %v", p, err)
	}
	if n, err := d.Len(ctx); err != nil || n != 1 { // the embedded Dict's method
		t.Fatalf("Len = %d, %v", n, err)
	}
	// The same object through the untyped proxy; a string in it is not a point.
	c.Dict("pts").Set(ctx, "s", "text")
	if _, err := d.Get(ctx, "s"); !errors.Is(err, ErrType) {
		t.Fatalf("Get of a string as a point = %v, want ErrType", err)
	}

	q, err := NewQueueOf[[]byte](ctx, c, "q", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.TryGet(ctx); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryGet of an empty queue = %v", err)
	}
	q.Put(ctx, []byte("one"))
	q.TryPut(ctx, []byte("two"))
	if err := q.TryPut(ctx, []byte("three")); !errors.Is(err, ErrFull) {
		t.Fatalf("TryPut on a full queue = %v", err)
	}
	if b, err := q.Get(ctx); err != nil || string(b) != "one" {
		t.Fatalf("Get = %q, %v", b, err)
	}

	v := NewValueOf[float64](c, "v")
	if _, err := v.Get(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before Set = %v", err)
	}
	v.Set(ctx, 1.5)
	if ok, _ := v.CompareAndSwap(ctx, 1.5, 2.5); !ok {
		t.Fatal("CompareAndSwap of the stored value failed")
	}
	if x, err := v.Get(ctx); err != nil || x != 2.5 {
		t.Fatalf("Get = %v, %v", x, err)
	}

	l := NewListOf[string](c, "l")
	l.Extend(ctx, "a", "b", "c")
	l.Append(ctx, "d")
	l.Insert(ctx, 0, "z")
	l.Set(ctx, 1, "A")
	l.Remove(ctx, "b")
	if s, err := l.Slice(ctx, 0, 100); err != nil || !slices.Equal(s, []string{"z", "A", "c", "d"}) {
		t.Fatalf("Slice = %v, %v", s, err)
	}
	if s, err := l.Get(ctx, -1); err != nil || s != "d" {
		t.Fatalf("Get(-1) = %q, %v", s, err)
	}
	if s, err := l.Pop(ctx, 0); err != nil || s != "z" {
		t.Fatalf("Pop(0) = %q, %v", s, err)
	}
}
