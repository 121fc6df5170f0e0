package manager

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

// TestAddAcrossProcesses: 8 client processes Add 1 to one key 10,000
// times each (2,000 under -race); the total is exact (Python's d[k] += 1 through a manager
// loses updates).
func TestAddAcrossProcesses(t *testing.T) { countAcrossProcesses(t, "adder", work(10000)) }

// TestLockedIncrementAcrossProcesses: the same with Get and Set under a
// manager Lock.
func TestLockedIncrementAcrossProcesses(t *testing.T) {
	countAcrossProcesses(t, "locked-incr", work(2000))
}

// countAcrossProcesses runs 8 children of role, each adding 1 to dict
// "d" key "n" n times, and checks the total.
func countAcrossProcesses(t *testing.T, role string, n int) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		ctx := testutil.Context(t)
		const procs = 8
		var kids []*testutil.Child
		for i := 0; i < procs; i++ {
			kids = append(kids, testutil.Spawn(t, role, testutil.Env("MGR_ADDR", addr), testutil.Env("N", strconv.Itoa(n))))
		}
		for _, k := range kids {
			if err := k.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var got int64
		if err := dial(t, addr).Dict("d").Get(ctx, "n", &got); err != nil || got != int64(procs*n) {
			t.Fatalf("total %d, %v; want %d", got, err, procs*n)
		}
	})
}

// TestLockHolderKilled: a client process SIGKILLed holding the Lock: a
// waiter gets it, with ErrOwnerDead, and the lock works on.
func TestLockHolderKilled(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		ctx := testutil.Context(t)
		c := testutil.Spawn(t, "holder", testutil.Env("MGR_ADDR", addr))
		if err := c.Await(ctx, "held"); err != nil {
			t.Fatal(err)
		}
		l := dial(t, addr).Lock("l")
		if ok, err := l.TryAcquire(ctx); ok || err != nil {
			t.Fatalf("TryAcquire of a held lock = %v, %v", ok, err)
		}
		got := make(chan error, 1)
		go func() { got <- l.Acquire(ctx) }()
		time.Sleep(20 * time.Millisecond)
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if !errors.Is(err, ErrOwnerDead) {
				t.Fatalf("Acquire after the holder died = %v, want ErrOwnerDead", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the dead holder's lock was not released")
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire after recovery = %v, want nil", err)
		}
		l.Release(ctx)
	})
}

// TestBlockedCallDoesNotStall: a Queue.Get blocked on an empty queue does
// not delay a Dict.Get on the same client, and its ctx ends it.
func TestBlockedCallDoesNotStall(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		ctx := context.Background()
		q, err := c.Queue(ctx, "q", 0)
		if err != nil {
			t.Fatal(err)
		}
		gctx, cancel := context.WithCancel(ctx)
		got := make(chan error, 1)
		go func() { var s string; got <- q.Get(gctx, &s) }()
		time.Sleep(20 * time.Millisecond)
		d := c.Dict("d")
		if err := d.Set(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var v string
		if err := d.Get(ctx, "k", &v); err != nil || v != "v" {
			t.Fatalf("Dict.Get = %q, %v", v, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Dict.Get took %v beside a blocked Queue.Get", d)
		}
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Get = %v", err)
		}
		// The server stopped waiting for it: a Put now is got by the next Get.
		if err := q.Put(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		var m string
		if err := q.Get(ctx, &m); err != nil || m != "m" {
			t.Fatalf("Get = %q, %v", m, err)
		}
	})
}

// TestTransportUsed: on "shm" the client and server talk over a Pipe by
// default; with NoSharedMemory on either side, and over TCP, they stay on
// the socket.
func TestTransportUsed(t *testing.T) {
	_, addr := serve(t, "shm", Options{})
	c, err := Dial(context.Background(), addr, Options{Key: testKey, NoSharedMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.conn.(*net.UnixConn); !ok {
		t.Errorf("a client with NoSharedMemory: connection %T", c.conn)
	}
	if _, err := c.Dict("d").Add(context.Background(), "k", 1); err != nil {
		t.Error(err)
	}
	for network, pipe := range map[string]bool{"shm": true, "unix": false, "tcp": false} {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		if _, ok := c.conn.(*pipeConn); ok != pipe {
			t.Errorf("%s: connection %T", network, c.conn)
		}
		if _, err := c.Dict("d").Add(context.Background(), "k", 1); err != nil {
			t.Errorf("%s: %v", network, err)
		}
	}
}

// TestBatch: many calls in one write; each Pending has its own result.
func TestBatch(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		ctx := context.Background()
		if _, err := c.Queue(ctx, "q", 0); err != nil {
			t.Fatal(err)
		}
		b := c.Batch()
		var adds []*Pending
		for i := 0; i < 100; i++ {
			adds = append(adds, b.Dict("d").Add("n", 1))
		}
		b.Dict("d").Set("s", "x")
		get := b.Dict("d").Get("s")
		missing := b.Dict("d").Get("nope")
		put := b.Put("q", 7)
		if err := b.Send(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Send = %v, want the missing key's ErrNotFound", err)
		}
		for i, p := range adds {
			if n, err := p.Int(); err != nil || n != int64(i+1) {
				t.Fatalf("add %d = %d, %v (calls run in order)", i, n, err)
			}
		}
		var s string
		if err := get.Decode(&s); err != nil || s != "x" {
			t.Fatalf("Get after Set in one batch = %q, %v", s, err)
		}
		if err := missing.Err(); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing = %v", err)
		}
		if err := put.Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Queue(ctx, "q", 0); err != nil {
			t.Fatal(err)
		} else if l, _ := n.Len(ctx); l != 1 {
			t.Fatalf("queue length %d after the batched Put", l)
		}
	})
}

// TestBarrier: three clients meet at a Barrier, each with its own arrival
// index; a request carrying client-made state (Vals) changes nothing and
// cannot crash the server.
func TestBarrier(t *testing.T) {
	_, addr := serve(t, "unix", Options{})
	ctx := testutil.Context(t)
	got := make(chan int, 3)
	for i := 0; i < 3; i++ {
		c := dial(t, addr)
		b, err := c.Barrier(ctx, "b", 3)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			n, err := b.Wait(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- n
		}()
	}
	seen := 0
	for i := 0; i < 3; i++ {
		seen |= 1 << <-got
	}
	if seen != 7 {
		t.Fatalf("arrival indexes %b, want 0, 1, 2 once each", seen)
	}
	c := dial(t, addr)
	if _, err := c.call(ctx, &request{Op: opWait, Kind: tBarrier, Obj: "x", Vals: [][]byte{{0xff}}}); err == nil {
		t.Fatal("a Wait on a barrier never created succeeded")
	}
	if _, err := c.Barrier(ctx, "one", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.call(ctx, &request{Op: opWait, Kind: tBarrier, Obj: "one", Vals: [][]byte{{0xff}}}); err != nil {
		t.Fatalf("a one-party Wait with junk Vals = %v", err)
	}
	stillServes(t, addr)
}

// TestFrameLimits: a request above the frame limit fails with ErrTooLarge
// before anything is sent and the client works on; a reply above the
// server's limit reaches the caller as ErrTooLarge, not a cut connection.
func TestFrameLimits(t *testing.T) {
	_, addr := serve(t, "unix", Options{MaxFrame: 4 << 10})
	ctx := testutil.Context(t)
	c, err := Dial(ctx, addr, Options{Key: testKey, MaxFrame: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := c.Dict("d")
	if err := d.Set(ctx, "big", strings.Repeat("x", 8<<10)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set of 8 KiB through a 4 KiB frame limit = %v, want ErrTooLarge", err)
	}
	// Three values that fit one by one, whose Keys reply does not.
	for i := 0; i < 3; i++ {
		if err := d.Set(ctx, strings.Repeat(strconv.Itoa(i), 2<<10), 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Keys(ctx); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Keys of 6 KiB through a 4 KiB frame limit = %v, want ErrTooLarge", err)
	}
	if n, err := d.Len(ctx); err != nil || n != 3 {
		t.Fatalf("Len after the refusals = %d, %v", n, err)
	}
	// A call whose body is not a request: the server answers it (ErrInvalid;
	// the client drops a reply to no call of its own) and serves on.
	if err := c.send(kCall, 999, []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	stillServes(t, addr)
	if _, err := d.Len(ctx); err != nil {
		t.Fatalf("the client after a garbage call: %v", err)
	}
}

// timeoutReader returns its bytes one at a time with a deadline error
// between them, as a connection whose reader is interrupted does.
type timeoutReader struct {
	b    []byte
	tick bool
}

func (r *timeoutReader) Read(p []byte) (int, error) {
	if r.tick = !r.tick; r.tick {
		return 0, os.ErrDeadlineExceeded
	}
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

// TestFrameReaderResumes: a read interrupted part way through a frame
// goes on from there at the next read; no byte is lost.
func TestFrameReaderResumes(t *testing.T) {
	var stream []byte
	for i := 0; i < 5; i++ {
		stream = appendFrame(stream, kReply, uint64(i), bytes.Repeat([]byte{byte(i)}, 40*i))
	}
	fr := frameReader{r: &timeoutReader{b: stream}, max: 1 << 10}
	for i := 0; i < 5; {
		f, err := fr.read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil || f.id != uint64(i) || len(f.body) != 40*i || (i > 0 && f.body[0] != byte(i)) {
			t.Fatalf("frame %d: id %d, %d bytes, %v", i, f.id, len(f.body), err)
		}
		i++
	}
}

// TestReadTurnHandOff: a caller reading the connection for its own
// blocked call (the read turn) whose ctx ends hands the turn on: the
// other callers' replies, and later calls, still arrive.
func TestReadTurnHandOff(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		ctx := testutil.Context(t)
		q, err := c.Queue(ctx, "q", 0)
		if err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 20; round++ {
			gctx, cancel := context.WithCancel(ctx)
			got := make(chan error, 1)
			go func() {
				var v int
				got <- q.Get(gctx, &v) // blocks on the server; likely holds the turn
			}()
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						if _, err := c.Dict("d").Add(ctx, "n", 1); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			time.Sleep(time.Duration(round%5) * time.Millisecond)
			cancel()
			if err := <-got; !errors.Is(err, context.Canceled) {
				t.Fatalf("Get after cancel = %v", err)
			}
			wg.Wait()
		}
		var n int
		if err := c.Dict("d").Get(ctx, "n", &n); err != nil || n != 20*4*50 {
			t.Fatalf("n = %d, %v; want %d", n, err, 20*4*50)
		}
		// The abandoned Gets got nothing: a Put now is there to get.
		if err := q.Put(ctx, 7); err != nil {
			t.Fatal(err)
		}
		if l, err := q.Len(ctx); err != nil || l != 1 {
			t.Fatalf("queue length %d, %v after the abandoned Gets", l, err)
		}
	})
}

// TestLargeBatch: a batch whose requests and replies are each far larger
// than the socket's buffers (100 Sets of 64 KiB, each followed by its Get)
// completes: the client reads replies while it is still writing requests,
// so neither side waits for the other for ever.
func TestLargeBatch(t *testing.T) {
	forNetworks(t, func(t *testing.T, network string) {
		_, addr := serve(t, network, Options{})
		c := dial(t, addr)
		ctx := testutil.Context(t)
		val := bytes.Repeat([]byte{7}, 64<<10)
		b := c.Batch()
		var gets []*Pending
		for i := 0; i < 100; i++ {
			k := strconv.Itoa(i)
			b.Dict("big").Set(k, val)
			gets = append(gets, b.Dict("big").Get(k))
		}
		done := make(chan error, 1)
		go func() { done <- b.Send(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a 6.4 MiB batch did not complete in 20 s (client and server both blocked writing?)")
		}
		for _, g := range gets {
			var got []byte
			if err := g.Decode(&got); err != nil || !bytes.Equal(got, val) {
				t.Fatalf("Get: %d bytes, %v", len(got), err)
			}
		}
	})
}
