package manager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLockGrantsToOneConnection: 200 locks of one holder, each awaited by
// a call of one other connection, all granted at once when the holder
// goes: the server records them all (once a concurrent map write that
// killed the server).
func TestLockGrantsToOneConnection(t *testing.T) {
	for _, nw := range []string{"unix", "tcp"} {
		t.Run(nw, func(t *testing.T) {
			_, addr := serve(t, nw, Options{})
			ctx := context.Background()
			for round := 0; round < 5; round++ {
				holder, waiter := dial(t, addr), dial(t, addr)
				const k = 200
				for i := 0; i < k; i++ {
					if err := holder.Lock(fmt.Sprint("L", round, "-", i)).Acquire(ctx); err != nil {
						t.Fatal(err)
					}
				}
				var wg sync.WaitGroup
				for i := 0; i < k; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						err := waiter.Lock(fmt.Sprint("L", round, "-", i)).Acquire(ctx)
						if err != nil && !errors.Is(err, ErrOwnerDead) {
							t.Error(err)
						}
					}(i)
				}
				time.Sleep(100 * time.Millisecond) // all k blocked on the server
				holder.Close()                     // k waiters of one conn granted at once
				wg.Wait()
				waiter.Close()
			}
		})
	}
}

// TestDuplicateCallIDRefused: call ids are the client's; blocking calls
// that reuse a waiting call's id are refused, so MaxPending still bounds
// the server's goroutines, and the connection works on.
func TestDuplicateCallIDRefused(t *testing.T) {
	_, addr := serve(t, "unix", Options{MaxPending: 4})
	c := dial(t, addr)
	// A call that waits keeps the client reading (the read turn is taken
	// only while calls wait), so the refusals' replies are read and
	// dropped, as replies to no call are.
	ctx := context.Background()
	waited := make(chan error, 1)
	go func() { waited <- c.Event("reading").Wait(ctx) }()
	time.Sleep(20 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 0; i < 2000; i++ {
		body := appendRequest(nil, &request{Op: opWait, Kind: tEvent, Obj: "never"})
		if err := c.send(kCall, 1<<60, body); err != nil { // same id every time
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if g := runtime.NumGoroutine() - before; g > 100 {
		t.Errorf("MaxPending 4, but %d server goroutines blocked for one connection", g)
	}
	if _, err := c.Dict("d").Add(ctx, "k", 1); err != nil {
		t.Fatalf("the connection after the refused calls: %v", err)
	}
	if err := c.Event("reading").Set(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
}

// TestEmptyBatch: Send with nothing to send returns at once.
func TestEmptyBatch(t *testing.T) {
	_, addr := serve(t, "unix", Options{})
	c := dial(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	t0 := time.Now()
	err := c.Batch().Send(ctx)
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("Send of an empty batch blocked %v (until ctx), returned %v", d, err)
	}
}

// TestAbandonedOwnerDeadAcquireReleased: an Acquire whose caller gives up
// just as the server grants it from a dead holder (ErrOwnerDead, which
// carries the lock) either returns it or is undone: the lock is never
// left held by a client that was told it failed.
func TestAbandonedOwnerDeadAcquireReleased(t *testing.T) {
	_, addr := serve(t, "unix", Options{})
	bg := context.Background()
	for round := 0; round < 100; round++ {
		name := fmt.Sprint("od", round)
		holder, b := dial(t, addr), dial(t, addr)
		if err := holder.Lock(name).Acquire(bg); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(bg)
		done := make(chan error, 1)
		go func() { done <- b.Lock(name).Acquire(ctx) }()
		time.Sleep(2 * time.Millisecond)
		go holder.Close()
		time.Sleep(time.Duration(round%20) * 50 * time.Microsecond)
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) {
			b.Close()
			continue // acquired and told: fine
		}
		time.Sleep(20 * time.Millisecond) // let any undo run
		ok, _ := dial(t, addr).Lock(name).TryAcquire(bg)
		if !ok {
			rel := b.Lock(name).Release(bg) // nil: b is the owner
			t.Fatalf("round %d: b's Acquire returned %v, yet lock %q stays held; b.Release: %v", round, err, name, rel)
		}
		b.Close()
	}
}

// TestIdleBeforeFirstFrame: an authenticated connection that never sends
// a frame is cut after IdleTimeout as any idle one is.
func TestIdleBeforeFirstFrame(t *testing.T) {
	_, addr := serve(t, "unix", Options{IdleTimeout: 200 * time.Millisecond})
	conn := rawConn(t, addr)
	sn := readHello(t, conn)
	cn := make([]byte, nonceLen)
	conn.Write(appendFrame(nil, kAuth, 0, append(helloBody(cn), mac(testKey, "client", sn, cn)...)))
	fr := frameReader{r: conn, max: preAuthMax}
	if f, err := fr.read(); err != nil || f.kind != kWelcome {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	_, err := conn.Read(b[:])
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("IdleTimeout 200ms, idle authenticated connection still open after 2s")
	}
}

// TestPipelinedRepliesAtHalfClose: replies held back to go out together
// are all written before the server sees the client's half-close.
func TestPipelinedRepliesAtHalfClose(t *testing.T) {
	_, addr := serve(t, "tcp", Options{})
	conn := rawConn(t, addr)
	sn := readHello(t, conn)
	cn := make([]byte, nonceLen)
	conn.Write(appendFrame(nil, kAuth, 0, append(helloBody(cn), mac(testKey, "client", sn, cn)...)))
	fr := frameReader{r: conn, max: 1 << 20}
	if _, err := fr.read(); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for i := 0; i < 10; i++ {
		buf = appendFrame(buf, kCall, uint64(i+1), appendRequest(nil, &request{Op: opAdd, Kind: tDict, Obj: "h", Key: "k", N: 1}))
	}
	conn.Write(buf)
	conn.(*net.TCPConn).CloseWrite()
	n := 0
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, err := fr.read(); err != nil {
			break
		}
		n++
	}
	if n != 10 {
		t.Errorf("10 calls run, %d replies received before the server closed", n)
	}
}

// TestRefusedBarrierWaitDoesNotArrive: a Barrier.Wait refused for
// MaxPending has not arrived: the barrier does not trip without it.
func TestRefusedBarrierWaitDoesNotArrive(t *testing.T) {
	_, addr := serve(t, "unix", Options{MaxPending: 1})
	bg := context.Background()
	a, b := dial(t, addr), dial(t, addr)
	go a.Event("never").Wait(bg) // a's one pending slot
	time.Sleep(50 * time.Millisecond)
	ba, err := a.Barrier(bg, "bar", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = ba.Wait(bg); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a Wait past MaxPending = %v, want ErrTooLarge", err)
	}
	bb, _ := b.Barrier(bg, "bar", 3)
	go func() { bb.Wait(bg) }()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	c := dial(t, addr)
	bc, _ := c.Barrier(bg, "bar", 3)
	if _, err := bc.Wait(ctx); err == nil {
		t.Errorf("3-party barrier passed with 2 live parties (a was refused: ErrTooLarge)")
	}
}

// TestUncreatedObjects: a Queue, Semaphore or Barrier is made only by its
// constructor; a call on one never made is ErrNotFound (it used to make
// one from the call's argument: an unbounded queue, a zero semaphore).
func TestUncreatedObjects(t *testing.T) {
	_, addr := serve(t, "unix", Options{})
	c := dial(t, addr)
	ctx := context.Background()
	b := c.Batch()
	put := b.Put("nowhere", 1)
	b.Send(ctx)
	if err := put.Err(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Put on a queue never created = %v, want ErrNotFound", err)
	}
	for _, kind := range []uint8{tSemaphore, tBarrier} {
		if _, err := c.call(ctx, &request{Op: opTryAcquire, Kind: kind, Obj: "nowhere"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s never created: %v, want ErrNotFound", typeNames[kind], err)
		}
	}
}

// TestCounterOverflow: Add past int64 and a Release past the largest
// semaphore count are errors, not wrap-arounds.
func TestCounterOverflow(t *testing.T) {
	_, addr := serve(t, "unix", Options{})
	c := dial(t, addr)
	ctx := context.Background()
	d := c.Dict("d")
	if _, err := d.Add(ctx, "n", math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Add(ctx, "n", 1); err == nil {
		t.Fatalf("MaxInt64 + 1 = %d", n)
	}
	if n, err := d.Add(ctx, "n", 0); err != nil || n != math.MaxInt64 {
		t.Fatalf("after the refused Add: %d, %v", n, err)
	}
	s, err := c.Semaphore(ctx, "s", math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx); err == nil {
		t.Fatal("a Release past MaxInt64 succeeded")
	}
}

// TestWriteHonoursCtx: against a server that stops reading, a call whose
// request cannot be written returns when its ctx ends, and so does a call
// waiting behind it for the write turn; Close ends the rest.
func TestWriteHonoursCtx(t *testing.T) {
	ln, err := ListenUnix(filepath.Join(t.TempDir(), "m", "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stuck := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if serverHandshake(conn, testKey, time.Second) != nil {
			conn.Close()
			return
		}
		stuck <- conn // authenticated, then never read
	}()
	bg := context.Background()
	c, err := Dial(bg, "unix:"+ln.Addr().String(), Options{Key: testKey, NoSharedMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { (<-stuck).Close() }()
	defer c.Close()
	big := strings.Repeat("x", 8<<20) // far more than the socket buffers
	done := make(chan error, 2)
	for i, d := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond} {
		go func() {
			ctx, cancel := context.WithTimeout(bg, d)
			defer cancel()
			if i == 0 {
				done <- c.Dict("d").Set(ctx, "k", big)
			} else {
				time.Sleep(50 * time.Millisecond) // behind the big write
				var v int
				done <- c.Dict("d").Get(ctx, "n", &v)
			}
		}()
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a call against a server that does not read = %v, want DeadlineExceeded", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a call blocked in (or behind) a write did not honour its ctx")
		}
	}
}

// TestBatchCtxEndsKeepsReplies: a batch whose ctx ends while one call
// still waits on the server reports the replies that came (the Put took
// effect) and ctx's error for the rest.
func TestBatchCtxEndsKeepsReplies(t *testing.T) {
	_, addr := serve(t, "unix", Options{})
	c := dial(t, addr)
	bg := context.Background()
	if _, err := c.Queue(bg, "in", 0); err != nil {
		t.Fatal(err)
	}
	b := c.Batch()
	put := b.Put("in", 1)
	add := b.Dict("d").Add("n", 5)
	wait := b.add( // an Event.Wait that never returns, in the same batch
		request{Op: opWait, Kind: tEvent, Obj: "never"})
	ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
	defer cancel()
	if err := b.Send(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want DeadlineExceeded", err)
	}
	if err := put.Err(); err != nil {
		t.Fatalf("the Put that took effect reports %v", err)
	}
	if n, err := add.Int(); err != nil || n != 5 {
		t.Fatalf("the Add that took effect reports %d, %v", n, err)
	}
	if err := wait.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the waiting call reports %v", err)
	}
	q, _ := c.Queue(bg, "in", 0)
	if n, err := q.Len(bg); err != nil || n != 1 {
		t.Fatalf("queue length %d, %v", n, err)
	}
}

// TestFullPendingServesNonBlocking: with a connection's blocked calls at
// MaxPending, calls that cannot block (a Dict's Get, though Queue.Get
// shares its op) are still served; a Queue.Get is refused.
func TestFullPendingServesNonBlocking(t *testing.T) {
	_, addr := serve(t, "unix", Options{MaxPending: 1})
	c := dial(t, addr)
	bg := context.Background()
	q, err := c.Queue(bg, "q", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	go c.Event("never").Wait(ctx) // the one blocked call
	time.Sleep(50 * time.Millisecond)
	c.Dict("d").Set(bg, "k", 1)
	var v int
	if err := c.Dict("d").Get(bg, "k", &v); err != nil || v != 1 {
		t.Fatalf("Dict.Get with MaxPending reached = %d, %v", v, err)
	}
	if err := q.Get(bg, &v); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Queue.Get with MaxPending reached = %v, want ErrTooLarge", err)
	}
}
