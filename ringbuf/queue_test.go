package ringbuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
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
	t.Cleanup(func() { q.Close() })
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
		q.Shutdown()
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
		q.Shutdown()
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
		err = q.WithReserve(ctx, 10, func(room []byte) (int, error) {
			if len(room) != 10 {
				t.Fatalf("room of %d bytes, want 10", len(room))
			}
			return copy(room, "zerocopy!!") - 2, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := q.WithPeek(ctx, func(m []byte) error { got = string(m); return nil }); err != nil || got != "zerocopy" {
			t.Fatalf("WithPeek = %q, %v", got, err)
		}
		// A callback's error abandons the reservation, and is returned.
		boom := errors.New("boom")
		if err := q.WithReserve(ctx, 4, func([]byte) (int, error) { return 0, boom }); err != boom {
			t.Fatalf("WithReserve with a failing callback = %v", err)
		}
		if err := q.WithReserve(ctx, 4, func([]byte) (int, error) { return 5, nil }); !errors.Is(err, ErrInvalid) {
			t.Fatalf("WithReserve committing more than reserved = %v", err)
		}
		// A callback's ErrFull is the callback's, not the ring's: no wait.
		if err := q.WithReserve(ctx, 4, func([]byte) (int, error) { return 0, ErrFull }); !errors.Is(err, ErrFull) {
			t.Fatalf("WithReserve with a callback returning ErrFull = %v", err)
		}
		if _, err := q.TryGet(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("an abandoned reservation was delivered: TryGet = %v", err)
		}
		// WithPeek consumes the message even when the callback fails.
		q.TryPut([]byte("x"))
		if err := q.WithPeek(ctx, func([]byte) error { return boom }); err != boom {
			t.Fatalf("WithPeek with a failing callback = %v", err)
		}
		if q.Len() != 0 {
			t.Fatalf("Len after WithPeek = %d", q.Len())
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
			q.WithReserve(ctx, 8, func(room []byte) (int, error) { return copy(room, msg), nil })
			q.WithPeek(ctx, func(m []byte) error { buf[0] = m[0]; return nil })
		})
		if allocs != 0 {
			t.Fatalf("%v allocs per round", allocs)
		}
	})
}

func TestUseAfterClose(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		q, err := CreateAnonymous(Options{Mode: mode, Capacity: 4096, MaxMessage: 64})
		if err != nil {
			t.Fatal(err)
		}
		q.Close()
		ctx := context.Background()
		for name, err := range map[string]error{
			"Put":      q.Put(ctx, []byte("x")),
			"TryPut":   q.TryPut(nil),
			"Shutdown": q.Shutdown(),
			"Close":    q.Close(),
		} {
			if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		}
		if _, err := q.Get(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Get after Close = %v", err)
		}
		if q.Len() != 0 || q.Stats().Puts != 0 {
			t.Error("Len/Stats after Close not zero")
		}
	})
}
