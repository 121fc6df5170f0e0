package ringbuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func newQ(t testing.TB, o Options) *Queue {
	t.Helper()
	q, err := CreateAnonymous(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Detach() })
	return q
}

func forModes(t *testing.T, f func(t *testing.T, mode Mode)) {
	for _, m := range []Mode{SPSC, MPMC} {
		t.Run(m.String(), func(t *testing.T) { f(t, m) })
	}
}

func TestPutGetOrderAndWrap(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 1024, MaxMessage: 200})
		ctx := context.Background()
		buf := make([]byte, 300)
		// Many laps around a small ring with varied sizes, including 0.
		for i := 0; i < 5000; i++ {
			msg := bytes.Repeat([]byte{byte(i)}, i%201)
			if err := q.Put(ctx, msg); err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			n, err := q.GetInto(ctx, buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("get %d: %v, %d bytes", i, err, n)
			}
		}
		if _, err := q.TryGet(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryGet on empty = %v", err)
		}
	})
}

func TestFullEmptyTooLarge(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 256, MaxMessage: 32})
		n := 0
		for ; ; n++ {
			err := q.TryPut([]byte("0123456789"))
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n == 0 {
			t.Fatal("nothing fit")
		}
		if err := q.TryPut(make([]byte, 33)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversize put = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := q.Put(ctx, []byte("0123456789")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put on full with deadline = %v", err)
		}
		if _, err := q.GetInto(context.Background(), make([]byte, 5)); !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("short buffer = %v", err)
		}
		for i := 0; i < n; i++ {
			if m, err := q.TryGet(); err != nil || string(m) != "0123456789" {
				t.Fatalf("get %d: %q %v", i, m, err)
			}
		}
		st := q.Stats()
		if st.Puts != uint64(n) || st.Gets != uint64(n) || st.FullEvents == 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestCloseDrains(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 4096, MaxMessage: 64})
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			q.Put(ctx, []byte{byte(i)})
		}
		q.Close()
		if err := q.Put(ctx, []byte("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Put after Close = %v", err)
		}
		for i := 0; i < 3; i++ {
			if m, err := q.Get(ctx); err != nil || m[0] != byte(i) {
				t.Fatalf("drain %d: %v %v", i, m, err)
			}
		}
		if _, err := q.Get(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Get after drain = %v", err)
		}
	})
}

func TestBlockedGetWokenByPutAndClose(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 4096, MaxMessage: 64})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got := make(chan error, 2)
		go func() {
			m, err := q.Get(ctx)
			if err == nil && string(m) != "hi" {
				err = fmt.Errorf("got %q", m)
			}
			got <- err
			_, err = q.Get(ctx)
			got <- err
		}()
		time.Sleep(20 * time.Millisecond)
		q.Put(ctx, []byte("hi"))
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		q.Close()
		if err := <-got; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Get after Close = %v", err)
		}
	})
}

func TestBatchAndZeroCopy(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 2048, MaxMessage: 100})
		ctx := context.Background()
		msgs := [][]byte{[]byte("a"), []byte("bb"), []byte(""), []byte("dddd")}
		if n, err := q.PutBatch(ctx, msgs); n != 4 || err != nil {
			t.Fatalf("PutBatch = %d, %v", n, err)
		}
		buf := make([]byte, 64)
		sizes := make([]int, 8)
		n, err := q.GetBatch(ctx, buf, sizes)
		if err != nil || n != 4 {
			t.Fatalf("GetBatch = %d, %v", n, err)
		}
		if string(buf[:7]) != "abbdddd" || sizes[0] != 1 || sizes[1] != 2 || sizes[2] != 0 || sizes[3] != 4 {
			t.Fatalf("batch %q %v", buf[:7], sizes[:4])
		}
		w, err := q.Reserve(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		copy(w, "zerocopy!!")
		if err := q.Commit(8); err != nil {
			t.Fatal(err)
		}
		r, err := q.Peek(ctx)
		if err != nil || string(r) != "zerocopy" {
			t.Fatalf("Peek = %q, %v", r, err)
		}
		if err := q.Release(); err != nil {
			t.Fatal(err)
		}
		if err := q.Release(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("second Release = %v", err)
		}
	})
}

func TestConcurrentGoroutines(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 4096, MaxMessage: 16})
		ctx := context.Background()
		const per = 20000
		var wg sync.WaitGroup
		producers := 1
		if mode == MPMC {
			producers = 3
		}
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					if err := q.Put(ctx, []byte{byte(p), byte(i), byte(i >> 8), byte(i >> 16)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		last := make([]int, producers)
		for i := range last {
			last[i] = -1
		}
		buf := make([]byte, 16)
		for i := 0; i < per*producers; i++ {
			n, err := q.GetInto(ctx, buf)
			if err != nil || n != 4 {
				t.Fatal(n, err)
			}
			p, seq := int(buf[0]), int(buf[1])|int(buf[2])<<8|int(buf[3])<<16
			if seq != last[p]+1 {
				t.Fatalf("producer %d: got %d after %d", p, seq, last[p])
			}
			last[p] = seq
		}
		wg.Wait()
	})
}

func TestZeroAllocs(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q := newQ(t, Options{Mode: mode, Capacity: 1 << 16, MaxMessage: 64})
		ctx := context.Background()
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		msgs := [][]byte{msg, msg, msg}
		sizes := make([]int, 3)
		bbuf := make([]byte, 192)
		allocs := testing.AllocsPerRun(1000, func() {
			q.Put(ctx, msg)
			q.GetInto(ctx, buf)
			q.TryPut(msg)
			q.TryGetInto(buf)
			q.PutBatch(ctx, msgs)
			q.GetBatch(ctx, bbuf, sizes)
			w, _ := q.Reserve(ctx, 8)
			copy(w, msg)
			q.Commit(8)
			q.Peek(ctx)
			q.Release()
		})
		if allocs != 0 {
			t.Fatalf("%v allocs per round", allocs)
		}
	})
}

func TestUseAfterDetach(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q, err := CreateAnonymous(Options{Mode: mode, Capacity: 4096, MaxMessage: 64})
		if err != nil {
			t.Fatal(err)
		}
		q.Detach()
		ctx := context.Background()
		for name, err := range map[string]error{
			"Put":    q.Put(ctx, []byte("x")),
			"TryPut": q.TryPut(nil),
			"Close":  q.Close(),
			"Detach": q.Detach(),
		} {
			if err == nil {
				t.Errorf("%s after Detach succeeded", name)
			}
		}
		if _, err := q.Get(ctx); err == nil {
			t.Error("Get after Detach succeeded")
		}
		if q.Len() != 0 || q.Stats().Puts != 0 {
			t.Error("Len/Stats after Detach not zero")
		}
	})
}
