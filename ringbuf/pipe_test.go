package ringbuf

// Pipe tests in one process: messages, polling, the stream copy, deadlines,
// close and half-close, an absent peer, allocations. Just over 500 lines:
// each test is one behaviour of pipe.go or pipe_io.go, and they share the
// pair helpers at the top.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

// newPipe returns both ends of an anonymous pipe, closed at cleanup.
func newPipePair(tb testing.TB, o PipeOptions) (a, b *Conn) {
	tb.Helper()
	a, b, err := NewPipe(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

// within fails the test unless f returns within d.
func pipeWithin(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not done after %v", what, d)
	}
}

func TestPipeMessageRoundTrip(t *testing.T) {
	const maxMsg = 1000
	a, b := newPipePair(t, PipeOptions{Capacity: 4096, MaxMessage: maxMsg})
	if a.MaxMessage() != maxMsg || b.MaxMessage() != maxMsg {
		t.Fatalf("MaxMessage = %d, %d", a.MaxMessage(), b.MaxMessage())
	}
	ctx := testutil.Context(t)
	buf := make([]byte, maxMsg)
	sizes := []int{0, 1, 7, 8, 9, 100, maxMsg - 1, maxMsg, 0}
	for round := 0; round < 50; round++ { // laps around the 4 KiB rings
		for _, dir := range [][2]*Conn{{a, b}, {b, a}} {
			tx, rx := dir[0], dir[1]
			for i, n := range sizes {
				msg := bytes.Repeat([]byte{byte(round + i)}, n)
				if err := tx.Send(ctx, msg); err != nil {
					t.Fatalf("send %d bytes: %v", n, err)
				}
				var got []byte
				if i%2 == 0 {
					k, err := rx.RecvInto(ctx, buf)
					if err != nil {
						t.Fatalf("RecvInto %d bytes: %v", n, err)
					}
					got = buf[:k]
				} else {
					var err error
					if got, err = rx.Recv(ctx); err != nil {
						t.Fatalf("Recv %d bytes: %v", n, err)
					}
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("sent %d bytes, got %d", n, len(got))
				}
			}
		}
	}
	if err := a.Send(ctx, make([]byte, maxMsg+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Send of MaxMessage+1 = %v, want ErrTooLarge", err)
	}
	// A short buffer leaves the message in place.
	if err := a.Send(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RecvInto(ctx, buf[:4]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("RecvInto short = %v, want ErrShortBuffer", err)
	}
	if n, err := b.RecvInto(ctx, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("RecvInto after short = %q, %v", buf[:n], err)
	}
	// Recv after a partial Read returns the rest of the message; Read
	// skips empty messages.
	for _, m := range []string{"", "abcdef", "", "gh"} {
		if err := a.Send(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.Read(buf[:2]); err != nil || string(buf[:n]) != "ab" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != "cdef" {
		t.Fatalf("Recv after partial Read = %q, %v", m, err)
	}
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "gh" {
		t.Fatalf("Read over an empty message = %q, %v", buf[:n], err)
	}
}

func TestPipePoll(t *testing.T) {
	a, b := newPipePair(t, PipeOptions{Capacity: 4096})
	ctx := testutil.Context(t)
	if ok, err := b.Poll(0); ok || err != nil {
		t.Fatalf("Poll on empty = %v, %v", ok, err)
	}
	start := time.Now()
	if ok, err := b.Poll(30 * time.Millisecond); ok || err != nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("Poll(30ms) on empty = %v, %v after %v", ok, err, time.Since(start))
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		a.Send(ctx, []byte("x"))
	}()
	if ok, err := b.Poll(-1); !ok || err != nil {
		t.Fatalf("Poll(-1) = %v, %v", ok, err)
	}
	if ok, err := b.Poll(0); !ok || err != nil {
		t.Fatalf("Poll does not consume: %v, %v", ok, err)
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != "x" {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	a.CloseWrite()
	if ok, err := b.Poll(time.Second); ok || err != io.EOF {
		t.Fatalf("Poll after CloseWrite = %v, %v; want io.EOF", ok, err)
	}
}

// pipeOddReader reads through r in a cycle of awkward buffer sizes.
type pipeOddReader struct {
	r     io.Reader
	sizes []int
	i     int
}

func (o *pipeOddReader) Read(p []byte) (int, error) {
	n := min(len(p), o.sizes[o.i%len(o.sizes)])
	o.i++
	return o.r.Read(p[:n])
}

func TestPipeStreamCopy(t *testing.T) {
	const total = 3 << 20
	a, b := newPipePair(t, PipeOptions{Capacity: 64 << 10, MaxMessage: 10000})
	data := make([]byte, total)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)

	// Both directions at once: a sends data to b, and b sends it back.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(2)
	go func() { // writer: sizes from 1 byte to several MaxMessage
		defer wg.Done()
		sizes := []int{1, 3, 10000, 10001, 65536, 123457, 7}
		for off, i := 0, 0; off < total; i++ {
			n := min(sizes[i%len(sizes)], total-off)
			k, err := a.Write(data[off : off+n])
			if err != nil || k != n {
				errs <- err
				return
			}
			off += n
		}
		errs <- a.CloseWrite()
	}()
	go func() { // echo at b, with odd read sizes
		defer wg.Done()
		_, err := io.Copy(b, &pipeOddReader{r: b, sizes: []int{1, 7, 333, 4097, 65537, 10000}})
		if err == nil {
			err = b.CloseWrite()
		}
		errs <- err
	}()
	h := sha256.New()
	n, err := io.CopyBuffer(h, &pipeOddReader{r: a, sizes: []int{13, 8191, 1 << 20}}, make([]byte, 1<<20))
	if err != nil || n != total {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("checksum differs")
	}
	if n, err := a.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v", n, err)
	}
}

func pipeIsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

func TestPipeDeadlines(t *testing.T) {
	a, b := newPipePair(t, PipeOptions{Capacity: 4096, MaxMessage: 1000})
	ctx := testutil.Context(t)
	buf := make([]byte, 100)

	// A past deadline fails reads, even with data there.
	if err := a.Send(ctx, []byte("data")); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := b.Read(buf); !pipeIsTimeout(err) {
		t.Fatalf("Read past deadline = %v", err)
	}
	if _, err := b.Recv(ctx); !pipeIsTimeout(err) {
		t.Fatalf("Recv past deadline = %v", err)
	}
	// Moving it into the future re-enables them.
	b.SetReadDeadline(time.Now().Add(time.Hour))
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "data" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	// A future deadline ends a blocked Read when it passes.
	start := time.Now()
	b.SetReadDeadline(start.Add(80 * time.Millisecond))
	_, err := b.Read(buf)
	if el := time.Since(start); !pipeIsTimeout(err) || el < 80*time.Millisecond || el > time.Second {
		t.Fatalf("Read with deadline = %v after %v", err, el)
	}
	// The deadline error stays until the deadline moves.
	if _, err := b.Read(buf); !pipeIsTimeout(err) {
		t.Fatalf("second Read = %v", err)
	}
	b.SetReadDeadline(time.Time{})

	// SetReadDeadline unblocks a blocked Read promptly, not at the end of
	// its sleep (made long here, so only the interrupt can wake it).
	b.slice = time.Hour
	got := make(chan error, 1)
	go func() {
		_, err := b.Read(buf)
		got <- err
	}()
	time.Sleep(30 * time.Millisecond)
	start = time.Now()
	b.SetReadDeadline(time.Now())
	select {
	case err := <-got:
		if !pipeIsTimeout(err) {
			t.Fatalf("blocked Read = %v", err)
		}
		if el := time.Since(start); el > 500*time.Millisecond {
			t.Fatalf("blocked Read took %v to notice the deadline", el)
		}
	case <-time.After(time.Second):
		t.Fatal("blocked Read not unblocked by SetReadDeadline")
	}
	// A deadline moved later while a Read blocks extends it.
	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	go func() {
		_, err := b.Read(buf)
		got <- err
	}()
	time.Sleep(5 * time.Millisecond)
	b.SetReadDeadline(time.Time{})
	time.Sleep(60 * time.Millisecond)
	if err := a.Send(ctx, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Read with a cleared deadline = %v", err)
	}

	// Write deadlines: fill a's ring, then a Write blocks until it.
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var n int
	for err = nil; err == nil; {
		var k int
		k, err = a.Write(make([]byte, 500))
		n += k
	}
	if !pipeIsTimeout(err) || n == 0 || n > 4096 {
		t.Fatalf("Write into a full ring = %v after %d bytes", err, n)
	}
	if err := a.Send(ctx, nil); !pipeIsTimeout(err) {
		t.Fatalf("Send past deadline = %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	a.SetDeadline(time.Time{})
	if err := a.Send(sctx, make([]byte, 1000)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send into a full ring with a ctx = %v", err)
	}
	// Cleared, and with room again, writes work.
	if _, err := io.ReadFull(b, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(make([]byte, 600)); err != nil {
		t.Fatalf("Write after clearing the deadline = %v", err)
	}
}

func TestPipeCloseEOF(t *testing.T) {
	a, b := newPipePair(t, PipeOptions{Capacity: 4096})
	ctx := testutil.Context(t)
	if _, err := a.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last words" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if _, err := b.Recv(ctx); err != io.EOF {
		t.Fatalf("Recv after close = %v", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Write to a closed peer = %v", err)
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after own Close = %v", err)
	}
	if err := a.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetDeadline after Close = %v", err)
	}
}

func TestPipeCloseWriteHalfClose(t *testing.T) {
	a, b := newPipePair(t, PipeOptions{Capacity: 4096})
	ctx := testutil.Context(t)
	if err := a.Send(ctx, []byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after CloseWrite = %v", err)
	}
	if m, err := b.Recv(ctx); err != nil || string(m) != "q" {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	if _, err := b.Recv(ctx); err != io.EOF {
		t.Fatalf("Recv after CloseWrite = %v", err)
	}
	// The other direction still works.
	if err := b.Send(ctx, []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if m, err := a.Recv(ctx); err != nil || string(m) != "answer" {
		t.Fatalf("Recv = %q, %v", m, err)
	}
}

func TestPipeCloseUnblocks(t *testing.T) {
	a, _ := newPipePair(t, PipeOptions{Capacity: 4096, MaxMessage: 1000})
	errs := make(chan error, 2)
	go func() {
		_, err := a.Read(make([]byte, 10))
		errs <- err
	}()
	go func() { // nobody reads: this fills the ring and blocks
		_, err := a.Write(make([]byte, 1<<20))
		errs <- err
	}()
	time.Sleep(50 * time.Millisecond)
	pipeWithin(t, time.Second, "Close", func() { a.Close() })
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked call after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(time.Second):
			t.Fatal("blocked call not released by Close")
		}
	}
}

// An end that never attached is absent, not dead; one that closed
// without using the pipe (NewPipe's end B, handed to a child) leaves it
// open for the next opener.
func TestPipeNamedAbsentPeer(t *testing.T) {
	name := testutil.Name(t)
	a, err := CreatePipe(name, PipeOptions{Capacity: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer a.Unlink()
	if got := a.LocalAddr(); got.Network() != "shmkit" || got.String() != name || a.RemoteAddr().String() != name {
		t.Fatalf("addr = %v %v", got.Network(), got)
	}
	ctx, cancel := context.WithTimeout(testutil.Context(t), 150*time.Millisecond)
	defer cancel()
	if _, err := a.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with no peer = %v, want the ctx's deadline", err)
	}
	b, err := OpenPipe(name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := OpenPipe(name); !errors.Is(err, ErrRole) {
		t.Fatalf("second OpenPipe = %v, want ErrRole", err)
	}
	if _, err := CreatePipe(name, PipeOptions{}); !errors.Is(err, shm.ErrExist) {
		t.Fatalf("second CreatePipe = %v", err)
	}
	ctx = testutil.Context(t)
	if err := b.Send(ctx, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := a.Recv(ctx); err != nil || string(m) != "hi" {
		t.Fatalf("Recv = %q, %v", m, err)
	}

	x, y := newPipePair(t, PipeOptions{Capacity: 4096})
	if x.LocalAddr().String() != "anonymous" {
		t.Fatalf("anonymous addr = %v", x.LocalAddr())
	}
	f, err := y.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	y.Close() // unused: detaches only
	z, err := OpenPipeFile(f)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if err := x.Send(ctx, []byte("to z")); err != nil {
		t.Fatal(err)
	}
	if m, err := z.Recv(ctx); err != nil || string(m) != "to z" {
		t.Fatalf("Recv at the reopened end = %q, %v", m, err)
	}
}

func TestPipeZeroAllocs(t *testing.T) {
	a, b := newPipePair(t, PipeOptions{Capacity: 1 << 16, MaxMessage: 1024})
	ctx := context.Background()
	msg := make([]byte, 100)
	buf := make([]byte, 1024)
	if n := testing.AllocsPerRun(1000, func() {
		if err := a.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := b.RecvInto(ctx, buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send+RecvInto: %v allocations", n)
	}
	big := make([]byte, 3000) // three messages
	b.SetDeadline(time.Now().Add(time.Hour))
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := b.Write(big); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(big); {
			k, err := a.Read(buf[:700])
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
	}); n != 0 {
		t.Errorf("Write+Read: %v allocations", n)
	}
	// Waiting does not allocate either: a ping-pong with an echoing
	// goroutine blocks on every call.
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		buf := make([]byte, 1024)
		for {
			n, err := b.Read(buf)
			if err != nil {
				return
			}
			if _, err := b.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	if n := testing.AllocsPerRun(200, func() {
		if err := a.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := a.RecvInto(ctx, buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("blocking Send+RecvInto: %v allocations", n)
	}
	a.CloseWrite()
	<-echoDone
	if n := testing.AllocsPerRun(100, func() {
		_ = a.LocalAddr().String()
	}); n != 0 {
		t.Errorf("LocalAddr: %v allocations", n)
	}
}

func BenchmarkPipePingPong(b *testing.B) {
	x, y := newPipePair(b, PipeOptions{Capacity: 1 << 16})
	ctx := context.Background()
	go func() {
		buf := make([]byte, 1<<15)
		for {
			n, err := y.RecvInto(ctx, buf)
			if err != nil {
				return
			}
			if y.Send(ctx, buf[:n]) != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := x.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := x.RecvInto(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
}
