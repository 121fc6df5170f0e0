//go:build linux

package fuzz

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmkit/shmkit/ringbuf"
	"github.com/shmkit/shmkit/shm"
)

// watchdog runs body on its own goroutine and fails t, with every
// goroutine's stack, if it takes longer than limit: a hang is a bug like a
// panic. body reports failures through fail, which ends it (t.Fatal may
// only be called from the test's goroutine).
func watchdog(t *testing.T, limit time.Duration, body func(fail func(format string, args ...any))) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(func(format string, args ...any) {
			t.Errorf(format, args...)
			runtime.Goexit()
		})
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("input still running after %v (hang):\n%s", limit, buf)
	}
}

// known reports whether SHMKIT_FUZZ_SKIP (a comma-separated list) names
// the check of a bug that was reported and is not fixed yet, so that a
// fuzzing run can look past it (the harness then accepts the result). The
// checks are:
//
//	closed-ctx           a blocking call on a closed handle with a ctx
//	                     already done returns ctx's error, not ErrClosed
//	mpmc-stale-lap-spin  MPMC: a blocking get on a shut-down queue whose
//	                     head's slot holds the previous lap while
//	                     tail > head (a corrupt ring) polls until its ctx
//	                     ends instead of sleeping or failing
//	spsc-tail-spin       SPSC: a blocking put on a full ring whose tail word
//	                     was overwritten (a corrupt ring) polls the same way
//
// Unset, every check runs, and the corpus entries of these bugs fail.
func known(check string) bool {
	for _, c := range strings.Split(os.Getenv("SHMKIT_FUZZ_SKIP"), ",") {
		if c == check {
			return true
		}
	}
	return false
}

// message is the payload of the id-th message of an input: n bytes that
// depend on id, so a message delivered twice, out of order or torn shows.
func message(id, n int) []byte {
	b := make([]byte, n)
	x := uint32(id)*2654435761 + 0x9e3779b9
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// recSize is an SPSC record's footprint in the ring (ringbuf/spsc.go): an
// 8-byte header and the payload padded to 8 bytes.
func recSize(n int) uint64 { return 8 + (uint64(n)+7)&^7 }

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// errCallback is what a WithReserve or WithPeek callback of the harness
// returns to give up; errPanic is what one panics with.
var (
	errCallback = errors.New("fuzz: callback gives up")
	errPanic    = errors.New("fuzz: callback panics")
)

// catch runs f, recovering a callback's panic with errPanic (any other
// panic goes on: it is a bug).
func catch(f func() error) (err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != errPanic {
				panic(p)
			}
			panicked = true
		}
	}()
	return f(), false
}

// probeClosed calls the methods of a handle after its Close: each must
// return ErrClosed (which matches net.ErrClosed too) and call no callback,
// and Stats and Len are zero. ctx is given to the blocking calls. It
// returns what went wrong, or "".
func probeClosed(q *ringbuf.Queue, ctx context.Context) string {
	called := false
	_, tryGet := q.TryGet()
	_, tryGetInto := q.TryGetInto(make([]byte, 8))
	_, get := q.Get(ctx)
	_, getBatch := q.GetBatch(ctx, make([]byte, 8), make([]int, 1))
	_, putBatch := q.PutBatch(ctx, [][]byte{nil})
	_, file := q.File()
	calls := []struct {
		name     string
		blocking bool
		err      error
	}{
		{"TryPut", false, q.TryPut(nil)},
		{"Put", true, q.Put(ctx, nil)},
		{"TryGet", false, tryGet},
		{"TryGetInto", false, tryGetInto},
		{"Get", true, get},
		{"GetBatch", true, getBatch},
		{"PutBatch", true, putBatch},
		{"WithReserve", true, q.WithReserve(ctx, 0, func([]byte) (int, error) { called = true; return 0, nil })},
		{"WithPeek", true, q.WithPeek(ctx, func([]byte) error { called = true; return nil })},
		{"File", false, file},
		{"Shutdown", false, q.Shutdown()},
		{"Close", false, q.Close()},
	}
	for _, c := range calls {
		if c.blocking && isCtxErr(c.err) && known("closed-ctx") {
			continue
		}
		if !errors.Is(c.err, ringbuf.ErrClosed) || !errors.Is(c.err, net.ErrClosed) {
			return fmt.Sprintf("%s after Close: %v, want ErrClosed", c.name, c.err)
		}
	}
	if called {
		return "a callback ran after Close"
	}
	if st, n := q.Stats(), q.Len(); st != (ringbuf.Stats{}) || n != 0 {
		return fmt.Sprintf("after Close: Stats %+v, Len %d; want zero", st, n)
	}
	return ""
}

// bytesIn reads input bytes; past the end it reads zeros.
type bytesIn struct{ b []byte }

func (in *bytesIn) more() bool { return len(in.b) > 0 }

func (in *bytesIn) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

// ---------------------------------------------------------------------------
// FuzzQueueOps: a sequence of operations on one queue, through one or two
// handles, checked against a model.

// Geometries an input chooses from (see runOps): small rings so that
// full, wrap-around and padding happen within a few operations, and
// MaxMessage values around every rounding boundary.
var (
	spscCaps = [...]int{64, 100, 128, 256, 512, 1024, 33, 2048}
	mpmcCaps = [...]int{64, 200, 256, 512, 1000, 1024, 4096, 8192}
	maxMsgs  = [...]int{0, 1, 7, 8, 9, 16, 23, 24, 25, 47, 48, 49, 56, 100, 120, 500}
)

// Operations of FuzzQueueOps. An operation byte is opcode (low 4 bits),
// handle (bit 4) and variant (bits 5-7); the operation's parameters follow.
// Variant bit 0 gives a blocking call a ctx already cancelled (0) or one
// of 200 µs (1). For the zero-copy calls, variant bit 2 means a count byte
// follows, last: the callback runs 1 + count%4 nested steps before it
// ends, so that other calls run while a reservation or a peeked message is
// outstanding (see step). Not for opReserve's variant 7, nor opCommit's
// and opRelease's variants 6 and 7: their callbacks do not nest.
const (
	opTryPut     = iota // len
	opTryGet            //
	opTryGetInto        // buflen
	opPutBatch          // count (variant%5), then a len each
	opGetBatch          // buflen; sizes = variant%5
	opReserve           // len: WithReserve, published; bit 1: the len published follows (above len: ErrInvalid); variant 7: a negative size
	opCommit            // len: WithReserve abandoned: the callback returns errCallback (bits 1-2: 0, 2), ErrFull (1) or panics (3)
	opPeek              // WithPeek, its callback checks the message
	opRelease           // WithPeek, consumed though the callback returns errCallback (bits 1-2: 0, 2), ErrEmpty (1) or panics (3)
	opStats             //
	opShutdown          //
	opPut               // len
	opGet               // buflen; variant bit 1: GetInto
	opReopen            // replace the handle by a new one (OpenFile), closing the old; variant 6: probe it with a cancelled ctx
	opFill              // len: TryPut until it fails
	opDrain             // TryGet until it fails
)

var opNames = [...]string{"TryPut", "TryGet", "TryGetInto", "PutBatch", "GetBatch", "Reserve", "Abandon",
	"Peek", "PeekFail", "Stats", "Shutdown", "Put", "Get", "Reopen", "Fill", "Drain"}

// entry is one message in the model, in queue order.
type entry struct {
	data    []byte
	pending bool   // reserved: its WithReserve callback is running
	dead    bool   // MPMC: an abandoned reservation's skip record
	start   uint64 // SPSC: ring position of its record (after any padding)
	end     uint64 // SPSC: ring position after its record
	pos     uint64 // MPMC: its position
}

type qhandle struct {
	q    *ringbuf.Queue
	name string
}

// ending is what a WithReserve or WithPeek callback does after its checks
// and nested steps: publish commit bytes (WithReserve), return err, or
// panic.
type ending struct {
	commit int
	err    error
	panics bool
	nested int
}

// opsRun holds the model of one input's queue. Every call's result is
// checked against it: messages come out in order and intact; ErrEmpty only
// when nothing is readable; ErrFull exactly when the ring has no room (the
// model tracks SPSC byte positions and padding, and MPMC slots not yet
// freed); ErrTooLarge exactly above MaxMessage; ErrShortBuffer leaves the
// message; after Shutdown puts fail and gets drain; a closed handle says
// ErrClosed; Stats agree, down to the full and empty events (a blocked
// call that polls instead of sleeping shows there).
type opsRun struct {
	fail   func(format string, args ...any)
	logf   func(format string, args ...any) // SHMKIT_FUZZ_TRACE=1: every step
	traced bool

	in     *bytesIn
	steps  int
	nested bool // running a step inside a callback
	mode   ringbuf.Mode
	maxMsg int
	cap    uint64 // SPSC ring bytes, MPMC slots
	hs     [2]*qhandle
	nextH  int
	ctx    context.Context // already cancelled
	op     string          // current operation, for messages

	prod, cons *qhandle // SPSC sides (the model of the role words)
	q          []*entry
	peeks      []*entry // messages whose WithPeek callback is running
	nextID     int
	closed     bool
	puts, gets uint64 // the put and get counters (MPMC Stats derive them from the positions)
	abandoned  uint64 // MPMC reservations given up
	skipped    uint64 // MPMC skip records passed by a consumer
	sealed     bool   // SPSC: shut down, and the queue's end settled (the seal)
	bIn, bOut  uint64
	fullEv     uint64
	emptyEv    uint64
	// SPSC: tail is the producer's byte position, pub the tail it
	// published (less padding staged by an abandoned reservation), head
	// the end of the last record consumed. MPMC: the next positions to
	// produce and to consume.
	tail, pub, head uint64
	unfreed         map[uint64]bool // MPMC positions whose slot is not yet free
}

func (r *opsRun) failf(format string, args ...any) {
	r.fail("%s [%v cap %d max %d]: %s", r.op, r.mode, r.cap, r.maxMsg, fmt.Sprintf(format, args...))
}

// length decodes a message or buffer length near the interesting sizes.
func (r *opsRun) length(c byte, near int) int {
	switch c >> 6 {
	case 0:
		return int(c & 63)
	case 1:
		return max(r.maxMsg-int(c&63), 0)
	case 2:
		return max(near+int(c&3)-2, 0)
	}
	return int(c&63) * (r.maxMsg + 1) / 63
}

func (r *opsRun) frontLen() int {
	if e := r.front(); e != nil {
		return len(e.data)
	}
	return 0
}

// occupied says whether anything holds space in the ring: messages,
// reservations, skip records, or messages being peeked.
func (r *opsRun) occupied() bool { return len(r.q) > 0 || len(r.peeks) > 0 }

// room says whether a record of n bytes fits now, and where the producer's
// position will be after it. For SPSC, ok uses the end of the last record
// consumed, and okAtMost the start of the next record not consumed yet (the
// consumer may have skipped the padding between them): the producer's view
// of the head lies between (or below, as the consumer publishes lazily).
// Once nothing is left the consumer has published its head, which is then
// the published tail.
func (r *opsRun) room(n int) (end uint64, ok, okAtMost bool) {
	if r.mode == ringbuf.MPMC {
		// The slot of position tail is free once position tail-nslots was.
		if r.tail >= r.cap && r.unfreed[r.tail-r.cap] {
			return 0, false, false
		}
		return r.tail + 1, true, true
	}
	need := recSize(n)
	off := r.tail & (r.cap - 1)
	pad := uint64(0)
	if off+need > r.cap {
		pad = r.cap - off // a record never wraps
	}
	end = r.tail + pad + need
	head, next := r.head, r.pub // nothing unpublished is consumed
	if !r.occupied() {
		head = r.pub
	}
	if len(r.q) > 0 {
		next = min(next, r.q[0].start)
	}
	for _, e := range r.peeks {
		next = min(next, e.start)
	}
	return end, end-head <= r.cap, end-next <= r.cap
}

// push appends a message to the model, or (pending) a reservation of n
// bytes.
func (r *opsRun) push(data []byte, n int, pending bool) *entry {
	end, _, _ := r.room(n)
	e := &entry{data: data, pending: pending}
	if r.mode == ringbuf.MPMC {
		e.pos = r.tail
		r.unfreed[e.pos] = true
	} else {
		e.start, e.end = end-recSize(n), end
	}
	r.tail = end
	r.q = append(r.q, e)
	if !pending {
		r.published(e)
	}
	return e
}

// published accounts for e becoming readable. An SPSC publish carries the
// padding staged before it.
func (r *opsRun) published(e *entry) {
	if r.mode == ringbuf.SPSC {
		r.pub = r.tail
	}
	r.puts++
	r.bIn += uint64(len(e.data))
}

// take claims the front entry for a consumer (MPMC: the head moves past
// it); free releases its space.
func (r *opsRun) take(e *entry) {
	if len(r.q) == 0 || r.q[0] != e {
		r.failf("model: taking an entry that is not the front")
	}
	r.q = r.q[1:]
	if r.mode == ringbuf.MPMC {
		r.head = e.pos + 1
	}
}

func (r *opsRun) free(e *entry) {
	if r.mode == ringbuf.MPMC {
		delete(r.unfreed, e.pos)
	} else {
		r.head = e.end
	}
}

func (r *opsRun) got(e *entry) {
	r.free(e)
	r.gets++
	r.bOut += uint64(len(e.data))
}

// skipDead accounts for a consumer looking at the ring: it skips (and
// frees) the skip records in front of the next message.
func (r *opsRun) skipDead() {
	for len(r.q) > 0 && r.q[0].dead {
		e := r.q[0]
		r.take(e)
		r.free(e)
		r.skipped++
	}
}

// dropLast removes an SPSC reservation that was not published: the last
// entry, as the producer is the only one.
func (r *opsRun) dropLast(e *entry) {
	if len(r.q) == 0 || r.q[len(r.q)-1] != e {
		r.failf("model: SPSC reservation not last")
	}
	r.q = r.q[:len(r.q)-1]
}

// checkRoom checks a put of n bytes that failed with full (isFull) or
// succeeded (err nil) against the ring's room. MPMC is exact. An SPSC
// consumer publishes its head lazily, so a producer may see less room than
// there is, but only while something is queued: an empty ring always has
// room for a message of MaxMessage. A full put counts a full event.
func (r *opsRun) checkRoom(n int, isFull bool, err error) (put bool) {
	_, fits, fitsAtMost := r.room(n)
	switch {
	case isFull && !fits:
		r.fullEv++
		return false
	case isFull && r.mode == ringbuf.SPSC && r.occupied():
		r.fullEv++
		return false
	case isFull:
		r.failf("put of %d found no room in a ring with room (%d queued, tail %d, head %d): %v", n, len(r.q), r.tail, r.head, err)
	case !fitsAtMost:
		r.failf("put of %d into a full ring (%d queued, tail %d, head %d): %v", n, len(r.q), r.tail, r.head, err)
	case err != nil:
		r.failf("put of %d bytes (%d queued, tail %d, head %d): %v", n, len(r.q), r.tail, r.head, err)
	}
	return true
}

// producerGate is the check a put makes once the message's size passed:
// SPSC takes the producer side (a new producer starts at the published
// tail: padding the previous one staged is gone) and then looks at the
// closed bit; MPMC finds the closed bit when it claims.
func (r *opsRun) producerGate(h *qhandle) error {
	if r.mode == ringbuf.SPSC {
		if r.prod != nil && r.prod != h {
			return ringbuf.ErrRole
		}
		if r.prod == nil {
			r.prod, r.tail = h, r.pub
		}
	}
	if r.closed {
		return ringbuf.ErrClosed
	}
	return nil
}

func (r *opsRun) consumerGate(h *qhandle) error {
	if r.mode == ringbuf.SPSC {
		if r.cons != nil && r.cons != h {
			return ringbuf.ErrRole
		}
		r.cons = h
	}
	return nil
}

func (r *opsRun) want(err, want error) {
	if !errors.Is(err, want) {
		r.failf("err = %v, want %v", err, want)
	}
}

// front is the message a get takes now (past skip records), or nil.
func (r *opsRun) front() *entry {
	for _, e := range r.q {
		if e.dead {
			continue
		}
		if e.pending {
			return nil
		}
		return e
	}
	return nil
}

// wantNothing checks the error of a get that found nothing readable (the
// queue is empty or its next position is an outstanding reservation), and
// counts the empty event. Blocking gets (ctx done or soon done) report it
// as ctx's error. Shut down, SPSC is drained: the consumer seals the queue
// at its head (a reservation outstanding will then not be published); MPMC
// waits for a reservation in front, which will.
func (r *opsRun) wantNothing(err error, blocking bool) {
	if r.closed && (r.mode == ringbuf.SPSC || len(r.q) == 0) {
		r.want(err, ringbuf.ErrClosed)
		r.sealed = true // SPSC: the consumer sealed the queue at its head
		return
	}
	r.emptyEv++
	if blocking && !isCtxErr(err) || !blocking && !errors.Is(err, ringbuf.ErrEmpty) {
		r.failf("err = %v on an empty queue (%d reservations outstanding, closed %v)", err, len(r.q), r.closed)
	}
}

func (r *opsRun) checkMsg(got []byte, e *entry) {
	if !bytes.Equal(got, e.data) {
		r.failf("got %d bytes %x, want %d bytes %x", len(got), trunc(got), len(e.data), trunc(e.data))
	}
}

func trunc(b []byte) []byte { return b[:min(len(b), 16)] }

func (r *opsRun) ctxFor(variant byte) (context.Context, context.CancelFunc) {
	if variant&1 == 0 {
		return r.ctx, func() {}
	}
	return context.WithTimeout(context.Background(), 200*time.Microsecond)
}

// nest runs the nested steps of a callback of busy (prod: WithReserve's),
// unless this is a nested step already.
func (r *opsRun) nest(busy *qhandle, prod bool, n int) {
	for i := 0; i < n && !r.nested && r.in.more() && r.steps < maxSteps; i++ {
		r.step(busy, prod)
	}
}

// ---- producers ----

func (r *opsRun) tryPut(h *qhandle, n int, blocking bool, variant byte) (put bool) {
	id := r.nextID
	r.nextID++
	msg := message(id, n)
	var err error
	if blocking {
		ctx, cancel := r.ctxFor(variant)
		err = h.q.Put(ctx, msg)
		cancel()
	} else {
		err = h.q.TryPut(msg)
	}
	if n > r.maxMsg {
		r.want(err, ringbuf.ErrTooLarge)
		return false
	}
	if gate := r.producerGate(h); gate != nil {
		r.want(err, gate)
		return false
	}
	isFull := errors.Is(err, ringbuf.ErrFull)
	if blocking {
		isFull = isCtxErr(err)
	}
	if !r.checkRoom(n, isFull, err) {
		return false
	}
	r.push(msg, n, false)
	return true
}

func (r *opsRun) putBatch(h *qhandle, ns []int, variant byte) {
	msgs := make([][]byte, len(ns))
	for i, n := range ns {
		msgs[i] = message(r.nextID, n)
		r.nextID++
	}
	ctx, cancel := r.ctxFor(variant)
	k, err := h.q.PutBatch(ctx, msgs)
	cancel()
	if len(msgs) == 0 {
		if k != 0 || err != nil {
			r.failf("empty batch = %d, %v", k, err)
		}
		return
	}
	// The first message's size is checked before the producer side.
	if len(msgs[0]) > r.maxMsg {
		if k != 0 {
			r.failf("put %d with %v", k, err)
		}
		r.want(err, ringbuf.ErrTooLarge)
		return
	}
	if gate := r.producerGate(h); gate != nil {
		if k != 0 {
			r.failf("put %d with %v", k, err)
		}
		r.want(err, gate)
		return
	}
	// The first k went in; the next (if any) was too large or found no
	// room.
	if k < 0 || k > len(msgs) {
		r.failf("PutBatch(%v) = %d, %v", ns, k, err)
	}
	for i := 0; i < k; i++ {
		if len(msgs[i]) > r.maxMsg {
			r.failf("PutBatch(%v) = %d, %v: put message %d, too large", ns, k, err, i)
		}
		r.checkRoom(len(msgs[i]), false, nil)
		r.push(msgs[i], len(msgs[i]), false)
	}
	switch {
	case k == len(msgs):
		if err != nil {
			r.failf("PutBatch(%v) = %d, %v", ns, k, err)
		}
	case len(msgs[k]) > r.maxMsg:
		r.want(err, ringbuf.ErrTooLarge)
	case r.checkRoom(len(msgs[k]), isCtxErr(err), err):
		r.failf("PutBatch(%v) = %d, %v: message %d has room", ns, k, err, k)
	}
}

// withReserve calls WithReserve(n) with a callback that checks the room
// against the model, writes the message, runs the nested steps and ends as
// end says.
func (r *opsRun) withReserve(h *qhandle, n int, end ending, variant byte) {
	id := r.nextID
	r.nextID++
	msg := message(id, max(n, 0))
	var resv *entry
	calls := 0
	ctx, cancel := r.ctxFor(variant)
	err, panicked := catch(func() error {
		return h.q.WithReserve(ctx, n, func(room []byte) (int, error) {
			if calls++; calls > 1 {
				r.failf("WithReserve(%d) called back %d times", n, calls)
			}
			resv = r.reserved(h, n, room, msg)
			r.nest(h, true, end.nested)
			if !bytes.Equal(room, msg) {
				r.failf("reserved room changed under its callback: %x, wrote %x", trunc(room), trunc(msg))
			}
			if end.panics {
				panic(errPanic)
			}
			return end.commit, end.err
		})
	})
	cancel()
	if calls == 0 {
		// The size is checked first, then as for a put.
		switch {
		case n < 0:
			r.want(err, ringbuf.ErrInvalid)
		case n > r.maxMsg:
			r.want(err, ringbuf.ErrTooLarge)
		default:
			if gate := r.producerGate(h); gate != nil {
				r.want(err, gate)
			} else if r.checkRoom(n, isCtxErr(err), err) {
				r.failf("WithReserve(%d) = %v without calling back", n, err)
			}
		}
		return
	}
	switch {
	case panicked != end.panics:
		r.failf("WithReserve(%d): panicked %v, callback panicked %v", n, panicked, end.panics)
	case end.panics:
		r.abandon(resv)
	case end.err == ringbuf.ErrFull:
		// Wrapped: WithReserve must not take it for its own and wait.
		if err == ringbuf.ErrFull || !errors.Is(err, ringbuf.ErrFull) {
			r.failf("WithReserve(%d) = %v, want the callback's ErrFull, wrapped", n, err)
		}
		r.abandon(resv)
	case end.err != nil:
		if err != end.err {
			r.failf("WithReserve(%d) = %v, want the callback's %v", n, err, end.err)
		}
		r.abandon(resv)
	case end.commit < 0 || end.commit > n:
		r.want(err, ringbuf.ErrInvalid)
		r.abandon(resv)
	case r.mode == ringbuf.SPSC && r.closed && r.sealed:
		// Shut down during the callback, and a consumer has since sealed
		// the queue at its head: nothing goes out, the staged padding
		// neither.
		r.want(err, ringbuf.ErrClosed)
		r.dropLast(resv)
		r.tail = r.pub
	case r.mode == ringbuf.SPSC && r.closed:
		// Shut down during the callback, not sealed yet: the producer seals
		// after its record, which is delivered.
		r.sealed = true
		if err != nil {
			r.failf("WithReserve(%d) publishing %d across Shutdown, unsealed: %v", n, end.commit, err)
		}
		resv.data, resv.pending = msg[:end.commit], false
		resv.end = resv.start + recSize(end.commit)
		r.tail = resv.end
		r.published(resv)
	default:
		if err != nil {
			r.failf("WithReserve(%d) publishing %d: %v", n, end.commit, err)
		}
		resv.data, resv.pending = msg[:end.commit], false
		if r.mode == ringbuf.SPSC {
			if r.q[len(r.q)-1] != resv {
				r.failf("model: SPSC reservation not last")
			}
			resv.end = resv.start + recSize(end.commit) // a shorter commit gives back the rest
			r.tail = resv.end
		}
		r.published(resv)
	}
}

// reserved accounts for a WithReserve callback being called: the size, the
// gate and the room must have allowed it.
func (r *opsRun) reserved(h *qhandle, n int, room, msg []byte) *entry {
	if n < 0 || n > r.maxMsg {
		r.failf("WithReserve(%d) called back (max %d)", n, r.maxMsg)
	}
	if gate := r.producerGate(h); gate != nil {
		r.failf("WithReserve(%d) called back; want %v", n, gate)
	}
	r.checkRoom(n, false, nil)
	if len(room) != n || cap(room) != n {
		r.failf("WithReserve(%d) called back with %d bytes (cap %d)", n, len(room), cap(room))
	}
	copy(room, msg)
	return r.push(nil, n, true)
}

// abandon accounts for a reservation given up: SPSC publishes nothing, but
// padding the reservation needed at the ring's end stays staged, to go out
// with the next record; MPMC publishes a skip record, which holds its slot
// until a consumer passes it.
func (r *opsRun) abandon(e *entry) {
	if r.mode == ringbuf.MPMC {
		e.pending, e.dead = false, true
		r.abandoned++
		return
	}
	r.dropLast(e)
	r.tail = e.start
}

// ---- consumers ----

func (r *opsRun) get(h *qhandle, bufLen int, into, blocking bool, variant byte) {
	var got []byte
	var err error
	buf := make([]byte, bufLen)
	ctx, cancel := r.ctxFor(variant)
	switch {
	case !into && !blocking:
		got, err = h.q.TryGet()
	case !into:
		got, err = h.q.Get(ctx)
	default:
		var n int
		if blocking {
			n, err = h.q.GetInto(ctx, buf)
		} else {
			n, err = h.q.TryGetInto(buf)
		}
		if err == nil && (n < 0 || n > len(buf)) {
			r.failf("GetInto read %d bytes into %d", n, len(buf))
		}
		if err == nil {
			got = buf[:n]
		}
	}
	cancel()
	if gate := r.consumerGate(h); gate != nil {
		r.want(err, gate)
		return
	}
	r.skipDead()
	e := r.front()
	if e == nil {
		r.wantNothing(err, blocking)
		return
	}
	if into && len(e.data) > bufLen {
		r.want(err, ringbuf.ErrShortBuffer)
		return
	}
	if err != nil {
		r.failf("get (%d queued, next %d bytes, buf %d): %v", len(r.q), len(e.data), bufLen, err)
	}
	r.take(e)
	r.checkMsg(got, e)
	r.got(e)
}

func (r *opsRun) getBatch(h *qhandle, bufLen, nsizes int, variant byte) {
	buf := make([]byte, bufLen)
	sizes := make([]int, nsizes)
	ctx, cancel := r.ctxFor(variant)
	k, err := h.q.GetBatch(ctx, buf, sizes)
	cancel()
	if nsizes == 0 {
		r.want(err, ringbuf.ErrInvalid)
		return
	}
	if gate := r.consumerGate(h); gate != nil {
		r.want(err, gate)
		return
	}
	r.skipDead()
	if e := r.front(); e == nil {
		if k != 0 {
			r.failf("GetBatch took %d from nothing", k)
		}
		r.wantNothing(err, true)
		return
	} else if len(e.data) > bufLen {
		if k != 0 {
			r.failf("GetBatch took %d", k)
		}
		r.want(err, ringbuf.ErrShortBuffer)
		return
	}
	if err != nil || k < 1 || k > nsizes {
		r.failf("GetBatch(%d bytes, %d sizes) = %d, %v", bufLen, nsizes, k, err)
	}
	used := 0
	for i := 0; i < k; i++ {
		r.skipDead()
		e := r.front()
		if e == nil || sizes[i] != len(e.data) || used+sizes[i] > bufLen {
			r.failf("GetBatch took %d, message %d of %d bytes (buf %d, used %d); model has %v", k, i, sizes[i], bufLen, used, e != nil)
		}
		r.take(e)
		r.checkMsg(buf[used:used+sizes[i]], e)
		r.got(e)
		used += sizes[i]
	}
	// It takes every message that fits; looking for the next one, it
	// passes the skip records before it.
	if k < nsizes {
		r.skipDead()
		if e := r.front(); e != nil && used+len(e.data) <= bufLen {
			r.failf("GetBatch stopped after %d messages (%d bytes of %d); the next, %d bytes, fits", k, used, bufLen, len(e.data))
		}
	}
}

// withPeek calls WithPeek with a callback that checks the message against
// the model, runs the nested steps, checks that the message stayed intact
// meanwhile and ends as end says. The message is consumed however the
// callback ends.
func (r *opsRun) withPeek(h *qhandle, end ending, variant byte) {
	var e *entry
	calls := 0
	ctx, cancel := r.ctxFor(variant)
	err, panicked := catch(func() error {
		return h.q.WithPeek(ctx, func(msg []byte) error {
			if calls++; calls > 1 {
				r.failf("WithPeek called back %d times", calls)
			}
			e = r.peeked(h, msg)
			r.nest(h, false, end.nested)
			if !bytes.Equal(msg, e.data) {
				r.failf("peeked message changed under its callback: %x, want %x", trunc(msg), trunc(e.data))
			}
			if end.panics {
				panic(errPanic)
			}
			return end.err
		})
	})
	cancel()
	if calls == 0 {
		if err == nil {
			r.failf("WithPeek = nil without calling back")
		}
		if gate := r.consumerGate(h); gate != nil {
			r.want(err, gate)
			return
		}
		r.skipDead()
		if f := r.front(); f != nil {
			r.failf("WithPeek = %v with %d bytes queued", err, len(f.data))
		}
		r.wantNothing(err, true)
		return
	}
	for i, p := range r.peeks {
		if p == e {
			r.peeks = append(r.peeks[:i], r.peeks[i+1:]...)
			break
		}
	}
	r.got(e)
	switch {
	case panicked != end.panics:
		r.failf("WithPeek: panicked %v, callback panicked %v", panicked, end.panics)
	case end.err == ringbuf.ErrEmpty:
		// Wrapped: WithPeek must not take it for its own and wait.
		if err == ringbuf.ErrEmpty || !errors.Is(err, ringbuf.ErrEmpty) {
			r.failf("WithPeek = %v, want the callback's ErrEmpty, wrapped", err)
		}
	case !end.panics && err != end.err:
		r.failf("WithPeek = %v, want the callback's %v", err, end.err)
	}
}

// peeked accounts for a WithPeek callback being called: the gate must have
// allowed it, and msg is the front message, in place.
func (r *opsRun) peeked(h *qhandle, msg []byte) *entry {
	if gate := r.consumerGate(h); gate != nil {
		r.failf("WithPeek called back; want %v", gate)
	}
	r.skipDead()
	e := r.front()
	if e == nil {
		r.failf("WithPeek called back with %d bytes from an empty queue", len(msg))
	}
	r.checkMsg(msg, e)
	if cap(msg) != len(msg) {
		r.failf("WithPeek's message has cap %d beyond its %d bytes", cap(msg), len(msg))
	}
	r.take(e)
	r.peeks = append(r.peeks, e)
	return e
}

func (r *opsRun) open(from *qhandle) *qhandle {
	f, err := from.q.File()
	if err != nil {
		r.failf("File: %v", err)
	}
	defer f.Close()
	q, err := ringbuf.OpenFile(f)
	if err != nil {
		r.failf("OpenFile: %v", err)
	}
	if q.Mode() != r.mode || q.MaxMessage() != r.maxMsg || uint64(q.Cap()) != r.cap {
		r.failf("second handle: %v max %d cap %d", q.Mode(), q.MaxMessage(), q.Cap())
	}
	r.nextH++
	return &qhandle{q: q, name: fmt.Sprint("h", r.nextH)}
}

// closeHandle closes h, which gives up its SPSC sides (a consumer publishes
// its head first), and probes it.
func (r *opsRun) closeHandle(h *qhandle, variant byte) {
	if err := h.q.Close(); err != nil {
		r.failf("Close: %v", err)
	}
	if r.prod == h {
		r.prod = nil
	}
	if r.cons == h {
		r.cons = nil
	}
	ctx := context.Background()
	if variant == 6 {
		ctx = r.ctx
	}
	if msg := probeClosed(h.q, ctx); msg != "" {
		r.failf("%s: %s", h.name, msg)
	}
}

func (r *opsRun) checkStats(h *qhandle) {
	st := h.q.Stats()
	want := ringbuf.Stats{Puts: r.puts, Gets: r.gets, BytesIn: r.bIn, BytesOut: r.bOut,
		FullEvents: r.fullEv, EmptyEvents: r.emptyEv, Len: int(r.puts - r.gets), Closed: r.closed}
	if r.mode == ringbuf.MPMC {
		// From the positions: claimed ones count; skip records are no
		// messages, so they come off Puts, off Gets once passed, and off
		// Len until then.
		want.Puts = r.tail - r.abandoned
		want.Gets = r.head - r.skipped
		want.Len = int(r.tail - r.head - (r.abandoned - r.skipped))
	}
	st.Sleeps, st.At = 0, time.Time{} // Sleeps depend on timing
	if st != want {
		r.failf("Stats = %+v\nwant %+v", st, want)
	}
	if n := h.q.Len(); n != want.Len {
		r.failf("Len = %d, want %d", n, want.Len)
	}
}

// FuzzQueueOps runs a sequence of operations on a fresh anonymous queue,
// through one or two handles, and checks each result against a model (see
// opsRun and runOps). Crashers name what they found; SHMKIT_FUZZ_TRACE=1
// logs every step with the model's and the ring's positions.
func FuzzQueueOps(f *testing.F) {
	const (
		spsc = 0
		mpmc = 1
	)
	op := func(code, handle, variant int) byte { return byte(code | handle<<4 | variant<<5) }
	seeds := [][]byte{
		// SPSC 64 bytes, MaxMessage 24 (records of 32: exactly two fit).
		{spsc | 0<<3, 7, op(opTryPut, 0, 0), 24, op(opTryPut, 0, 0), 24, op(opTryPut, 0, 0), 0,
			op(opTryGet, 0, 0), op(opTryPut, 0, 0), 1, op(opDrain, 0, 0), op(opStats, 0, 0)},
		// SPSC 128/16: fill, wrap with padding, short buffers, batches.
		{spsc | 2<<3, 5, op(opFill, 0, 0), 13, op(opTryGetInto, 0, 0), 0x80 | 1, op(opTryGetInto, 0, 0), 0x80 | 2,
			op(opTryPut, 0, 0), 16, op(opGetBatch, 0, 3), 40, op(opPutBatch, 0, 3), 16, 0, 5,
			op(opGetBatch, 0, 4), 0x80 | 2, op(opDrain, 0, 0)},
		// MPMC 4 slots: publish shorter; a put (on a second handle) while
		// a reservation runs; abandon; a put and a get while a message is
		// peeked; shut down and drain.
		{mpmc | 2<<3, 9, op(opReserve, 0, 2), 20, 10, op(opReserve, 0, 4), 20, 0, op(opTryPut, 0, 0), 3,
			op(opCommit, 0, 0), 30, op(opPeek, 0, 4), 1, op(opTryPut, 0, 0), 1, op(opTryGet, 1, 0),
			op(opShutdown, 0, 0), op(opTryPut, 0, 0), 1, op(opGet, 0, 0), 0, op(opDrain, 0, 0), op(opGet, 0, 1), 0},
		// MPMC: shut down while a reservation runs; a get waits behind it,
		// and it is delivered.
		{mpmc | 2<<3, 9, op(opTryPut, 0, 0), 5, op(opReserve, 0, 4), 10, 2, op(opShutdown, 0, 0),
			op(opGet, 1, 0), 0, op(opGet, 1, 1), 0, op(opDrain, 1, 0)},
		// MPMC 2 slots: while a message is peeked, a second handle takes
		// the next one, and finds the peeked one's slot still held when it
		// wants to get or put in the next lap.
		{mpmc, 5, op(opTryPut, 0, 0), 3, op(opTryPut, 0, 0), 4, op(opPeek, 0, 4), 3, op(opTryGet, 1, 0),
			op(opGet, 1, 1), 0, op(opTryPut, 1, 0), 5, op(opPut, 1, 1), 5, op(opDrain, 0, 0), op(opTryPut, 0, 0), 6},
		// SPSC: shut down while a reservation runs: it is not published.
		{spsc | 2<<3, 5, op(opTryPut, 0, 0), 5, op(opReserve, 0, 4), 10, 1, op(opTryGet, 0, 0),
			op(opShutdown, 0, 0), op(opTryGet, 0, 0), op(opTryGet, 0, 0)},
		// SPSC 64/24: an abandoned reservation leaves its padding staged;
		// the next put publishes it; a new producer starts without it.
		{spsc, 7, op(opTryPut, 0, 0), 16, op(opTryPut, 0, 0), 8, op(opDrain, 0, 0), op(opCommit, 0, 2), 24,
			op(opTryPut, 0, 0), 24, op(opTryGet, 0, 0), op(opTryPut, 0, 0), 8, op(opCommit, 0, 0), 24,
			op(opReopen, 0, 0), op(opTryPut, 0, 0), 8, op(opTryPut, 0, 0), 24, op(opDrain, 0, 0)},
		// Callbacks that panic, and a callback's ErrEmpty.
		{mpmc | 3<<3, 5, op(opTryPut, 0, 0), 3, op(opTryPut, 0, 0), 4, op(opCommit, 0, 6), 5,
			op(opRelease, 0, 6), op(opRelease, 0, 2), op(opReserve, 0, 0), 5, op(opDrain, 0, 0)},
		// SPSC, two handles: sides taken, refused, handed over on Reopen.
		{spsc | 3<<3, 9, op(opTryPut, 0, 0), 5, op(opTryPut, 1, 0), 5, op(opReopen, 1, 0), op(opTryGet, 1, 0),
			op(opTryPut, 1, 0), 5, op(opReopen, 0, 0), op(opTryPut, 0, 0), 9, op(opTryGet, 0, 0), op(opDrain, 1, 0)},
		// Options rejected: SPSC 64 with MaxMessage 500; the boundary.
		{spsc | 0<<3, 15},
		{spsc | 4<<3, 0x80 | 2},
		{spsc | 4<<3, 0x80 | 1, op(opFill, 0, 0), 0x40, op(opDrain, 0, 0)},
		// Busy polling, default spin, tiny timeouts.
		{mpmc | 1<<1 | 1<<2 | 1<<3, 3, op(opFill, 0, 0), 0x40, op(opPut, 0, 1), 0, op(opReserve, 0, 1), 0,
			op(opPeek, 0, 1), op(opGet, 0, 1), 0, op(opRelease, 0, 0), op(opDrain, 0, 0), op(opGet, 0, 1), 0, op(opPeek, 0, 1)},
		{spsc | 1<<1 | 2<<3, 8, op(opFill, 0, 0), 0x40, op(opPut, 0, 1), 8, op(opGetBatch, 0, 1), 0, op(opReserve, 0, 7), 0},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var logf func(string, ...any)
		if os.Getenv("SHMKIT_FUZZ_TRACE") != "" {
			logf = t.Logf
		}
		watchdog(t, 2*time.Second, func(fail func(string, ...any)) { runOps(fail, logf, data) })
	})
}

// maxSteps bounds the operations of one input, nested ones included.
const maxSteps = 256

// runOps decodes and runs one FuzzQueueOps input. Its first two bytes
// choose the queue: byte 0 bit 0 MPMC, bit 1 BusyPoll, bit 2 default spin
// (else none), bits 3-5 the capacity; byte 1 MaxMessage (bit 7: the SPSC
// limit, -1..+2). Operations follow (see step).
func runOps(fail, logf func(string, ...any), data []byte) {
	in := &bytesIn{data}
	c0, c1 := in.byte(), in.byte()
	opts := ringbuf.Options{Mode: ringbuf.SPSC, Participants: 4, Spin: -1, BusyPoll: c0&2 != 0}
	if c0&4 != 0 {
		opts.Spin = 0
	}
	capIdx := int(c0>>3) & 7
	opts.MaxMessage = maxMsgs[int(c1)%len(maxMsgs)]
	r := &opsRun{fail: fail, logf: logf, traced: logf != nil, in: in, unfreed: map[uint64]bool{}, op: "create"}
	valid := true
	if c0&1 == 0 {
		opts.Capacity = spscCaps[capIdx]
		rounded := 64
		for rounded < opts.Capacity {
			rounded <<= 1
		}
		if c1&0x80 != 0 {
			opts.MaxMessage = rounded/2 - 8 + int(c1&3) - 1
		}
		r.maxMsg = opts.MaxMessage
		if r.maxMsg == 0 {
			r.maxMsg = rounded/2 - 8
		}
		valid = 2*recSize(r.maxMsg) <= uint64(rounded)
		r.cap = uint64(rounded)
	} else {
		opts.Mode = ringbuf.MPMC
		opts.Capacity = mpmcCaps[capIdx]
		r.maxMsg = opts.MaxMessage
		if r.maxMsg == 0 {
			r.maxMsg = 4096
		}
	}
	r.mode = opts.Mode
	q, err := ringbuf.CreateAnonymous(opts)
	if !valid {
		if !errors.Is(err, ringbuf.ErrInvalid) {
			r.failf("CreateAnonymous(%+v) = %v, want ErrInvalid", opts, err)
		}
		return
	}
	if err != nil {
		r.failf("CreateAnonymous(%+v): %v", opts, err)
	}
	if r.mode == ringbuf.MPMC {
		r.cap = uint64(q.Cap())
		if r.cap < 2 || r.cap&(r.cap-1) != 0 || r.cap > uint64(max(opts.Capacity/(16+r.maxMsg), 2)) {
			q.Close()
			r.failf("MPMC Cap = %d", r.cap)
		}
	}
	if q.Mode() != r.mode || q.MaxMessage() != r.maxMsg || uint64(q.Cap()) != r.cap {
		q.Close()
		r.failf("queue %v max %d cap %d", q.Mode(), q.MaxMessage(), q.Cap())
	}
	r.hs[0] = &qhandle{q: q, name: "h0"}
	defer func() {
		for _, h := range r.hs {
			if h != nil {
				h.q.Close()
			}
		}
	}()
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.ctx = cctx

	for in.more() && r.steps < maxSteps {
		r.step(nil, false)
	}

	// Whatever is left comes out intact, in order.
	r.op = "final drain"
	h := r.any()
	if r.mode == ringbuf.SPSC && r.cons != nil {
		h = r.cons
	}
	for r.front() != nil {
		r.get(h, 0, false, false, 0)
	}
	r.get(h, 0, false, false, 0)
	r.checkStats(h)
}

// step decodes and runs one operation, then checks the Stats. Nested in a
// callback of busy (prod: a WithReserve's, else a WithPeek's), an
// operation that would wait for the callback goes to the other handle
// (opened if need be): one of the callback's side, which waits for the
// side's turn (a Try call forever), and closing busy, which waits for its
// callbacks. A nested step runs no nested steps of its own.
func (r *opsRun) step(busy *qhandle, prod bool) {
	c := r.in.byte()
	code, hi, variant := int(c&15), int(c>>4&1), c>>5
	if r.hs[hi] == nil && code != opReopen {
		hi = 1 - hi
	}
	if busy != nil && r.hs[hi] == busy && waitsFor(code, prod) {
		hi = 1 - hi
		if r.hs[hi] == nil && code != opReopen {
			r.hs[hi] = r.open(busy)
		}
	}
	h := r.hs[hi]
	outer, wasNested := r.op, r.nested
	r.op = fmt.Sprintf("step %d %s on %v", r.steps, opNames[code], hi)
	if busy != nil {
		r.op = fmt.Sprintf("%s, in the callback of %s", r.op, outer)
	}
	r.steps++
	r.nested = busy != nil
	defer func() { r.op, r.nested = outer, wasNested }()
	nested := func(on bool) int {
		if !on {
			return 0
		}
		return 1 + int(r.in.byte()&3)
	}
	failing := func(sentinel error) ending {
		switch variant >> 1 {
		case 1:
			return ending{err: sentinel}
		case 2:
			return ending{err: errCallback, nested: nested(true)}
		case 3:
			return ending{panics: true}
		}
		return ending{err: errCallback}
	}
	switch code {
	case opTryPut, opPut, opFill:
		n := r.length(r.in.byte(), r.maxMsg)
		if code == opFill {
			for i := 0; i < 600 && r.tryPut(h, n, false, variant); i++ {
			}
		} else {
			r.tryPut(h, n, code == opPut, variant)
		}
	case opTryGet:
		r.get(h, 0, false, false, variant)
	case opTryGetInto:
		r.get(h, r.length(r.in.byte(), r.frontLen()), true, false, variant)
	case opGet:
		r.get(h, r.length(r.in.byte(), r.frontLen()), variant&2 != 0, true, variant)
	case opDrain:
		for i := 0; i < 1100; i++ {
			stop := r.front() == nil || r.mode == ringbuf.SPSC && r.cons != nil && r.cons != h
			r.get(h, 0, false, false, variant)
			if stop {
				break
			}
		}
	case opPutBatch:
		ns := make([]int, variant%5)
		for i := range ns {
			ns[i] = r.length(r.in.byte(), r.maxMsg)
		}
		r.putBatch(h, ns, variant)
	case opGetBatch:
		r.getBatch(h, r.length(r.in.byte(), r.frontLen()), int(variant%5), variant)
	case opReserve:
		n := r.length(r.in.byte(), r.maxMsg)
		if variant == 7 {
			r.withReserve(h, -1-n, ending{}, variant)
			break
		}
		m := n
		if variant&2 != 0 {
			m = r.length(r.in.byte(), n)
		}
		r.withReserve(h, n, ending{commit: m, nested: nested(variant&4 != 0)}, variant)
	case opCommit:
		n := r.length(r.in.byte(), r.maxMsg)
		r.withReserve(h, n, failing(ringbuf.ErrFull), variant)
	case opPeek:
		r.withPeek(h, ending{nested: nested(variant&4 != 0)}, variant)
	case opRelease:
		r.withPeek(h, failing(ringbuf.ErrEmpty), variant)
	case opStats:
	case opShutdown:
		if err := h.q.Shutdown(); err != nil {
			r.failf("Shutdown: %v", err)
		}
		r.closed = true
	case opReopen:
		nh := r.open(r.any())
		if old := r.hs[hi]; old != nil {
			r.closeHandle(old, variant)
		}
		r.hs[hi] = nh
	}
	r.checkStats(r.any())
	if r.traced {
		ctl, _, _ := objects(r.any().q)
		tail := binary.LittleEndian.Uint64(ctl[offTail:])
		r.logf("%s: model %d queued, tail %d pub %d head %d, puts %d gets %d, closed %v; ring tail %d head %d, closed %v",
			r.op, len(r.q), r.tail, r.pub, r.head, r.puts, r.gets, r.closed,
			tail&^closedBit, binary.LittleEndian.Uint64(ctl[offHead:]), tail&closedBit != 0)
	}
}

// waitsFor says whether operation code, on the handle running a callback
// (prod: WithReserve's), would wait for that callback.
func waitsFor(code int, prod bool) bool {
	switch code {
	case opReopen:
		return true
	case opStats, opShutdown:
		return false
	case opTryPut, opPut, opFill, opPutBatch, opReserve, opCommit:
		return prod
	}
	return !prod
}

// any returns a handle that is open.
func (r *opsRun) any() *qhandle {
	if r.hs[0] != nil {
		return r.hs[0]
	}
	return r.hs[1]
}

// ---------------------------------------------------------------------------
// FuzzRingImage: a queue's shared state overwritten with arbitrary bytes.

// Control block and ring offsets from ringbuf/layout.go, spsc.go and
// mpmc.go (layout version 2), for seeds that aim at one field. The fuzzer
// reaches every byte without them; TestRingLayout pins them.
const (
	offMode      = 0
	offMaxMsg    = 4
	offCapacity  = 8
	offSlotSize  = 16
	offTail      = 128 // closedBit: shut down
	offProducer  = 136
	offHead      = 256
	offConsumer  = 264
	offDeadProd  = 392
	offDeadCons  = 400
	offAbandoned = 408
	offNotEmpty  = 512                    // event counts (internal/futex), each ecSpan bytes
	ecSpan       = 128                    // futex.Size(imageParts) rounded up to a line
	offNotFull   = offNotEmpty + ecSpan   //
	ecMask       = 8                      // mask word: bit i, slot i announced a sleeper
	ecEntries    = 16                     // the announcers' tokens, a uint32 per slot
	offStats     = offNotEmpty + 3*ecSpan // a 128-byte line per participant slot
	statsLineLen = 128
	stPuts       = 0
	stGets       = 8
	stClaimPut   = 64
	stClaimGet   = 72

	closedBit = 1 << 63

	recData = 0x5a5a0001 // SPSC record / MPMC slot flags
	recPad  = 0x5a5a0002
	recDead = 0x5a5a0003

	imageParts = 4 // participant slots of the queues FuzzRingImage builds
)

// Ring geometry of FuzzRingImage: SPSC 256 bytes, MaxMessage 64; MPMC 8
// slots of 64 bytes, MaxMessage 48.
var imageOpts = [2]ringbuf.Options{
	{Mode: ringbuf.SPSC, Capacity: 256, MaxMessage: 64, Participants: imageParts, Spin: -1},
	{Mode: ringbuf.MPMC, Capacity: 512, MaxMessage: 48, Participants: imageParts, Spin: -1},
}

// imageLens are the sizes of the messages put before the state is
// overwritten.
var imageLens = [...]int{5, 0, 48, 17}

// applyEdits overwrites mem as edits says: records of a 2-byte
// little-endian offset (modulo len(mem)), a length byte, and that many bytes
// (fewer at the end of edits), copied there, cut at the end of mem.
func applyEdits(mem, edits []byte) {
	for len(edits) >= 3 && len(mem) > 0 {
		off := int(binary.LittleEndian.Uint16(edits)) % len(mem)
		n := min(int(edits[2]), len(edits)-3)
		copy(mem[off:], edits[3:3+n])
		edits = edits[3+n:]
	}
}

// edit encodes one record for applyEdits; edit64 and edit32 write a word.
func edit(off int, b ...byte) []byte {
	return append([]byte{byte(off), byte(off >> 8), byte(len(b))}, b...)
}

func edit64(off int, v uint64) []byte { return edit(off, binary.LittleEndian.AppendUint64(nil, v)...) }
func edit32(off int, v uint32) []byte { return edit(off, binary.LittleEndian.AppendUint32(nil, v)...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// objects returns a queue's control block and ring, in this handle's
// mapping.
func objects(q *ringbuf.Queue) (ctl, ring []byte, err error) {
	if _, ctl, err = q.Segment().Lookup("queue", shm.KindQueue, shm.AnyAux); err != nil {
		return nil, nil, err
	}
	_, ring, err = q.Segment().Lookup("ring", shm.KindRing, shm.AnyAux)
	return ctl, ring, err
}

// load64 and load32 read a word that another goroutine may be writing.
func load64(b []byte) uint64 { return (*atomic.Uint64)(unsafe.Pointer(&b[0])).Load() }
func load32(b []byte) uint32 { return (*atomic.Uint32)(unsafe.Pointer(&b[0])).Load() }

// asleep runs block, which must go to sleep on the event count ec of q's
// control block, and checks the sleeper's announcement there: its slot's
// mask bit and its token, set while it sleeps and cleared when block's ctx
// ends (which also moves the sequence word, to wake it).
func asleep(t *testing.T, q *ringbuf.Queue, ec []byte, block func(ctx context.Context)) {
	t.Helper()
	self := q.Segment().Self()
	bit := uint64(1) << self.Slot()
	seq := load32(ec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		block(ctx)
	}()
	for deadline := time.Now().Add(5 * time.Second); load64(ec[ecMask:])&bit == 0; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Errorf("no sleeper announced in mask %#x (slot %d)", load64(ec[ecMask:]), self.Slot())
			break
		}
	}
	entry := load32(ec[ecEntries+4*self.Slot():])
	cancel()
	<-done
	if entry != uint32(self) || load64(ec[ecMask:])&bit != 0 || load32(ec[ecEntries+4*self.Slot():]) != 0 || load32(ec) == seq {
		t.Errorf("event count: entry %#x while asleep, want token %#x; after: %x", entry, uint32(self), ec[:ecEntries+4*imageParts])
	}
}

// TestRingLayout pins the offsets above against live queues: a consumer
// asleep on the empty ring, three messages put and got, the ring found
// empty (SPSC: which publishes the head), a reservation abandoned, one
// more put; a producer asleep on the full ring, and a shutdown.
func TestRingLayout(t *testing.T) {
	le := binary.LittleEndian
	for _, opts := range imageOpts {
		q, err := ringbuf.CreateAnonymous(opts)
		if err != nil {
			t.Fatal(err)
		}
		ctl, ring, err := objects(q)
		if err != nil {
			t.Fatal(err)
		}
		asleep(t, q, ctl[offNotEmpty:], func(ctx context.Context) { q.Get(ctx) })
		for i := 0; i < 3; i++ {
			if err := q.TryPut(message(i, imageLens[i])); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			if _, err := q.TryGet(); err != nil {
				t.Fatal(err)
			}
		}
		if opts.Mode == ringbuf.SPSC {
			if _, err := q.TryGet(); !errors.Is(err, ringbuf.ErrEmpty) {
				t.Fatal(err)
			}
		}
		if err := q.WithReserve(context.Background(), 5, func([]byte) (int, error) { return 0, errCallback }); err != errCallback {
			t.Fatal(err)
		}
		if err := q.TryPut(message(3, 5)); err != nil {
			t.Fatal(err)
		}
		line := ctl[offStats+statsLineLen*q.Segment().Self().Slot():]
		ok := le.Uint32(ctl[offMode:]) == uint32(opts.Mode) && le.Uint32(ctl[offMaxMsg:]) == uint32(opts.MaxMessage) &&
			le.Uint64(ctl[offCapacity:]) == uint64(q.Cap()) &&
			le.Uint64(line[stPuts:]) == 4 && le.Uint64(line[stGets:]) == 3 &&
			len(ctl) == offStats+statsLineLen*imageParts
		tail := uint64(96)
		if opts.Mode == ringbuf.SPSC {
			self := uint32(q.Segment().Self())
			ok = ok && le.Uint64(ctl[offHead:]) == 80 && le.Uint64(ctl[offAbandoned:]) == 0 &&
				le.Uint32(ctl[offProducer:]) == self && le.Uint32(ctl[offConsumer:]) == self &&
				le.Uint32(ring[0:]) == 5 && le.Uint32(ring[4:]) == recData && le.Uint32(ring[16:]) == 0 &&
				le.Uint32(ring[24:]) == 48 && le.Uint32(ring[28:]) == recData && le.Uint32(ring[80:]) == 5
		} else {
			// Position 3 is the abandoned reservation's skip record.
			tail = 5
			ok = ok && le.Uint32(ctl[offSlotSize:]) == 64 && q.Cap() == 8 && len(ring) == 8*64 &&
				le.Uint64(ctl[offHead:]) == 3 && le.Uint64(ctl[offAbandoned:]) == 1 &&
				le.Uint64(line[stClaimPut:]) == 5 && le.Uint64(line[stClaimGet:]) == 3 &&
				le.Uint64(ring[0:]) == 8 && le.Uint64(ring[64:]) == 9 && le.Uint64(ring[128:]) == 10 &&
				le.Uint64(ring[192:]) == 4 && le.Uint32(ring[192+8:]) == 0 && le.Uint32(ring[192+12:]) == recDead &&
				le.Uint64(ring[256:]) == 5 && le.Uint32(ring[256+8:]) == 5 && le.Uint32(ring[256+12:]) == recData
		}
		ok = ok && le.Uint64(ctl[offTail:]) == tail
		// A producer asleep on the full ring.
		for q.TryPut(message(4, 40)) == nil {
		}
		asleep(t, q, ctl[offNotFull:], func(ctx context.Context) { q.Put(ctx, message(5, 40)) })
		tail = le.Uint64(ctl[offTail:])
		q.Shutdown()
		ok = ok && le.Uint64(ctl[offTail:]) == tail|closedBit
		if !ok {
			t.Errorf("%v: layout drifted from the harness's offsets:\nctl %x\nline %x\nring %x", opts.Mode, ctl[:offNotEmpty], line[:statsLineLen], ring)
		}
		q.Close()
	}
}

// Operations of FuzzRingImage: an operation byte is opcode (low 4 bits),
// handle (bit 4: the creator's, or a second one opened with OpenFile) and
// variant (bits 5-7).
const (
	imTryGet = iota
	imTryGetInto
	imPeek    // WithPeek
	imTryPut  //
	imReserve // WithReserve, publishing all of it
	imPutBatch
	imGetBatch
	imGet // variant 6: wait past the stuck-claim grace
	imPut
	imStats
	imShutdown
	imOpen  // (re)open the second handle
	imClose // close the creator's handle
	imGetInto
	imCtlEdits // apply the control block edits again
	imRingEdits
)

var imNames = [...]string{"TryGet", "TryGetInto", "Peek", "TryPut", "Reserve", "PutBatch", "GetBatch", "Get",
	"Put", "Stats", "Shutdown", "Open", "Close", "GetInto", "CtlEdits", "RingEdits"}

// onSecond marks an image op to run on the second handle (bit 4).
func onSecond(op byte) byte { return 16 | op }

var defaultImageOps = []byte{imTryGet, imTryGetInto, imPeek, imTryPut, imReserve, imPutBatch, imGetBatch,
	imGet | 1<<5, imPut | 1<<5, imStats, imOpen, onSecond(imTryGet), onSecond(imTryGetInto), onSecond(imPeek), onSecond(imTryPut),
	onSecond(imStats), imShutdown, imTryGet, onSecond(imTryGet), imClose, onSecond(imTryPut), onSecond(imTryGet), onSecond(imStats)}

type imHandle struct {
	q       *ringbuf.Queue
	name    string
	ring    []byte // the ring in this handle's mapping
	corrupt bool   // a call returned ErrCorrupt: the handle stays unusable
}

type imageRun struct {
	fail func(format string, args ...any)
	cfg  byte
	op   string
	hs   [2]*imHandle
	ctx  context.Context // already cancelled
	long int             // waits past the stuck grace left
}

func (r *imageRun) failf(format string, args ...any) {
	r.fail("cfg %#x, %s: %s", r.cfg, r.op, fmt.Sprintf(format, args...))
}

// sentinels are the errors a call on a corrupt queue may return.
var sentinels = []error{ringbuf.ErrCorrupt, ringbuf.ErrFull, ringbuf.ErrEmpty, ringbuf.ErrClosed,
	ringbuf.ErrTooLarge, ringbuf.ErrShortBuffer, ringbuf.ErrRole, ringbuf.ErrInvalid,
	context.Canceled, context.DeadlineExceeded}

// checkErr checks a data call's error: a sentinel, and ErrCorrupt again
// once the handle reported it.
func (r *imageRun) checkErr(h *imHandle, err error) {
	if h.corrupt {
		if !errors.Is(err, ringbuf.ErrCorrupt) {
			r.failf("%s after ErrCorrupt: %v", h.name, err)
		}
		return
	}
	if err == nil {
		return
	}
	if errors.Is(err, ringbuf.ErrCorrupt) {
		h.corrupt = true
		return
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	r.failf("%s: error %v (%T) is no sentinel", h.name, err, err)
}

// checkMsg checks a message a call returned: at most MaxMessage bytes.
func (r *imageRun) checkMsg(h *imHandle, msg []byte) {
	if len(msg) > h.q.MaxMessage() {
		r.failf("%s returned %d bytes, MaxMessage %d", h.name, len(msg), h.q.MaxMessage())
	}
}

// checkInRing checks that a slice into the mapping lies inside the ring.
func (r *imageRun) checkInRing(h *imHandle, b []byte) {
	if b == nil {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(h.ring)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p+uintptr(cap(b)) > base+uintptr(len(h.ring)) {
		r.failf("%s: slice [%#x, %#x) outside the ring [%#x, %#x)", h.name, p, p+uintptr(cap(b)), base, base+uintptr(len(h.ring)))
	}
}

func (r *imageRun) checkLen(h *imHandle) {
	bound := h.q.Cap()
	if h.q.Mode() == ringbuf.SPSC {
		bound /= 8 // a record takes at least 8 bytes
	}
	st := h.q.Stats()
	if n := h.q.Len(); n < 0 || n > bound || st.Len < 0 || st.Len > bound {
		r.failf("%s: Len %d, Stats.Len %d; a %v ring of %d holds at most %d messages", h.name, n, st.Len, h.q.Mode(), h.q.Cap(), bound)
	}
}

// checkSlept checks that a call given time to wait slept rather than
// polled. A blocked call counts a full (empty) event each time it looks at
// the ring and finds no room (message): once, then once per wakeup, and a
// sleeper is woken only when its readiness check says the ring changed, or
// every 10 ms while it waits out a stuck claim. A readiness check that
// holds while the call still finds nothing makes a loop of them, burning
// the CPU until the ctx ends (and forever without one).
func (r *imageRun) checkSlept(h *imHandle, producer bool, before ringbuf.Stats, took time.Duration) {
	after := h.q.Stats()
	n := after.FullEvents + after.EmptyEvents - before.FullEvents - before.EmptyEvents
	if n <= uint64(8+took/time.Millisecond) ||
		known("mpmc-stale-lap-spin") && !producer && r.staleLap(h) ||
		known("spsc-tail-spin") && producer && h.q.Mode() == ringbuf.SPSC {
		return
	}
	r.failf("%s: %d full and empty events in %v: the call polled instead of sleeping", h.name, n, took)
}

// staleLap says whether h's MPMC queue is shut down with its head's slot
// holding the previous lap while tail > head (mpmc-stale-lap-spin).
func (r *imageRun) staleLap(h *imHandle) bool {
	ctl, _, err := objects(h.q)
	if err != nil || h.q.Mode() != ringbuf.MPMC {
		return false
	}
	le := binary.LittleEndian
	n := uint64(h.q.Cap())
	head, tail := le.Uint64(ctl[offHead:]), le.Uint64(ctl[offTail:])
	seq := le.Uint64(h.ring[(head&(n-1))*(uint64(len(h.ring))/n):])
	return tail&closedBit != 0 && tail&^closedBit > head && head >= n && (seq == head+1-n || seq == head-n)
}

// open attaches a handle to the queue's memory: it fails with ErrCorrupt
// or ErrIncompatible, or its configuration is consistent with the ring.
func (r *imageRun) open(from *imHandle, name string) *imHandle {
	f, err := from.q.File()
	if err != nil {
		r.failf("File: %v", err)
	}
	defer f.Close()
	q, err := ringbuf.OpenFile(f)
	if err != nil {
		if !errors.Is(err, ringbuf.ErrCorrupt) && !errors.Is(err, shm.ErrIncompatible) {
			r.failf("OpenFile: %v, want ErrCorrupt or ErrIncompatible", err)
		}
		return nil
	}
	_, ring, err := objects(q)
	if err != nil {
		q.Close()
		r.failf("objects of %s: %v", name, err)
	}
	c, m := q.Cap(), q.MaxMessage()
	ok := c >= 2 && c&(c-1) == 0 && m >= 0
	switch q.Mode() {
	case ringbuf.SPSC:
		ok = ok && c == len(ring) && 2*recSize(m) <= uint64(c)
	case ringbuf.MPMC:
		ok = ok && uint64(c)*(16+uint64(m)) <= uint64(len(ring))
	default:
		ok = false
	}
	if !ok {
		q.Close()
		r.failf("OpenFile: %v queue, cap %d, max %d, over a ring of %d bytes", q.Mode(), c, m, len(ring))
	}
	return &imHandle{q: q, name: name, ring: ring}
}

func (r *imageRun) any() *imHandle {
	if r.hs[0] != nil {
		return r.hs[0]
	}
	return r.hs[1]
}

// FuzzRingImage overwrites the shared state of a small queue (its control
// block, event counts included, and ring) and then calls every operation
// through the creator's handle and a second one: each must return a
// sentinel error or a result consistent with itself, never panic, hang,
// poll or reach outside the ring (see runImage).
func FuzzRingImage(f *testing.F) {
	const (
		spsc     = 0
		mpmc     = 1
		three    = 3 << 1 // messages put before the overwrite
		getOne   = 1 << 3
		wrap     = 1 << 4
		early    = 1 << 5 // second handle opened before
		shutdown = 1 << 6
		busyPoll = 1 << 7
	)
	line := offStats // participant slot 0's stats line (not necessarily the creator's)
	none := []byte(nil)
	type seed struct {
		cfg            byte
		ctl, ring, ops []byte
	}
	seeds := []seed{
		{spsc | three, none, none, none},
		{mpmc | three, none, none, none},
		{spsc | three | getOne | wrap | early, none, none, none},
		{mpmc | three | getOne | wrap | early | shutdown, none, none, none},
		// SPSC counters.
		{spsc | three, edit64(offTail, 1<<62), none, none},
		{spsc | three | getOne, edit64(offHead, 96+8), none, none},
		{spsc | three | getOne, edit64(offHead, 19), none, none},
		{spsc | three, edit64(offTail, 83), none, none},
		{spsc | three | early, cat(edit64(offTail, 1000), edit64(offHead, 744)), none, none},
		{spsc | three | shutdown, edit64(offTail, closedBit|1000), none, none},
		// SPSC records.
		{spsc | three, none, edit32(0, 1000), none},
		{spsc | three, none, edit32(0, 65), none},
		{spsc | three, none, edit32(4, 0), none},
		{spsc | three, none, cat(edit32(0, 200), edit32(4, recPad)), none},
		{spsc | three | wrap, none, edit32(4, recPad), none},
		// Configuration, read by a second handle.
		{spsc | three, edit32(offMode, 2), none, none},
		{spsc | three, edit32(offMode, 7), none, none},
		{spsc | three, edit32(offMaxMsg, 1<<31), none, none},
		{spsc | three, edit32(offMaxMsg, 120), none, none},
		{spsc | three, edit64(offCapacity, 128), none, none},
		{mpmc | three, edit32(offSlotSize, 128), none, none},
		{mpmc | three, edit32(offSlotSize, 8), none, none},
		{mpmc | three, edit32(offSlotSize, 0), none, none},
		{mpmc | three, edit64(offCapacity, 3), none, none},
		{mpmc | three, edit32(offMaxMsg, 49), none, none},
		// Roles, event counts, the closed bit, counters (counters of
		// 1<<63: see the *-len-negative corpus entries).
		{spsc | three, cat(edit32(offProducer, 0xdeadbeef), edit32(offConsumer, 0)), none,
			[]byte{onSecond(imTryGet), onSecond(imTryPut), onSecond(imPeek), imTryPut, imTryGet}},
		// Sleepers announced by nobody, or by a token that may name a live
		// participant (slot 0, generation 1): wakers reclaim the bits, or
		// pay a syscall.
		{spsc | three | getOne, cat(edit64(offNotEmpty+ecMask, ^uint64(0)), edit32(offNotEmpty+ecEntries, 1|1<<10),
			edit64(offNotFull+ecMask, 1<<3), edit32(offNotFull, 0xffffffff)), none,
			[]byte{imGet, imPut, imGet, imTryGet, imTryGet, imGet}},
		{mpmc | three | busyPoll, cat(edit64(offNotFull+ecMask, 0xf), edit32(offNotFull+ecEntries+4, 0xdeadbeef)), none,
			[]byte{imPut | 1<<5, imGet, imGet, imPut, imTryGet}},
		{mpmc | three, edit(offTail+7, 0x80), none, none},
		{mpmc | three | getOne, cat(edit64(offAbandoned, 1<<62), edit64(offDeadProd, 7), edit64(offDeadCons, 1<<63)), none,
			[]byte{imStats, imTryGet, imReserve, imTryGet, imStats}},
		// MPMC slots.
		{mpmc | three, none, edit64(64, 77), none},
		{mpmc | three, none, edit32(8, 49), none},
		{mpmc | three, none, edit32(12, 7), none},
		{mpmc | three, none, cat(edit32(12, recDead), edit32(64+12, recDead)), none},
		{mpmc | three | getOne, cat(edit64(offTail, 9), edit64(offHead, 1)), none, none},
		{mpmc | three | wrap, edit64(offHead, 20), none, none},
		// A claim nobody finishes: consumers wait out the grace and skip
		// it; producers free a slot its consumer never released.
		{mpmc, edit64(offTail, 1), none, []byte{imGet | 6<<5, imTryGet, imStats}},
		{mpmc, cat(edit64(offTail, 1), edit64(line+stClaimPut, 1)), none, []byte{imGet | 6<<5, imTryGet}},
		{mpmc | three, edit64(offHead, 1), edit64(0, 1), []byte{imTryPut, imTryPut, imTryPut, imTryPut,
			imTryPut, imTryPut, imPut | 6<<5, imTryPut, imStats}},
		// The same, shut down: the claim is final.
		{mpmc | shutdown, edit64(offTail, closedBit|1), none, []byte{imGet | 6<<5, imTryGet, imGet}},
		// Corruption while in use.
		{spsc | three | early, edit64(offTail, 3), none, []byte{onSecond(imTryGet), imCtlEdits, onSecond(imTryGet), onSecond(imTryGet)}},
		{mpmc | three | busyPoll, none, edit64(128, 5), []byte{imGet, imRingEdits, imGet | 6<<5, imPeek, imReserve}},
	}
	for _, s := range seeds {
		f.Add(s.cfg, s.ctl, s.ring, s.ops)
	}
	f.Fuzz(func(t *testing.T, cfg byte, ctlEdits, ringEdits, ops []byte) {
		watchdog(t, 2*time.Second, func(fail func(string, ...any)) { runImage(fail, cfg, ctlEdits, ringEdits, ops) })
	})
}

// runImage builds a queue as cfg says (bit 0 MPMC; bits 1-2 how many
// messages to put; bit 3 get one; bit 4 go round the ring first; bit 5
// open the second handle before the overwrite; bit 6 shut down; bit 7
// BusyPoll), overwrites its control block and ring with the edits, and
// runs ops (a default sequence if empty). Every call must return a
// sentinel error or a result consistent with itself, and never panic,
// hang or poll.
func runImage(fail func(string, ...any), cfg byte, ctlEdits, ringEdits, ops []byte) {
	r := &imageRun{fail: fail, cfg: cfg, op: "setup", long: 3}
	opts := imageOpts[cfg&1]
	opts.BusyPoll = cfg&0x80 != 0
	q, err := ringbuf.CreateAnonymous(opts)
	if err != nil {
		r.failf("CreateAnonymous: %v", err)
	}
	_, ring, err := objects(q)
	if err != nil {
		q.Close()
		r.failf("objects: %v", err)
	}
	r.hs[0] = &imHandle{q: q, name: "creator", ring: ring}
	defer func() {
		for _, h := range r.hs {
			if h != nil {
				h.q.Close()
			}
		}
	}()
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.ctx = cctx

	if cfg&0x10 != 0 {
		// Move the positions near the end of the ring: the next records
		// pad (SPSC) or go into the second lap (MPMC).
		n, size := q.Cap()-1, 1
		if opts.Mode == ringbuf.SPSC {
			n, size = 3, 60 // 3 records of 64 bytes
		}
		for i := 0; i < n; i++ {
			if err := q.TryPut(message(-i, size)); err != nil {
				r.failf("wrap put %d: %v", i, err)
			}
			if _, err := q.TryGet(); err != nil {
				r.failf("wrap get %d: %v", i, err)
			}
		}
	}
	for i := 0; i < int(cfg>>1&3); i++ {
		if err := q.TryPut(message(i, imageLens[i])); err != nil {
			r.failf("put %d: %v", i, err)
		}
	}
	if cfg&0x08 != 0 {
		if _, err := q.TryGet(); err != nil && !errors.Is(err, ringbuf.ErrEmpty) {
			r.failf("get: %v", err)
		}
	}
	if cfg&0x20 != 0 {
		if r.hs[1] = r.open(r.hs[0], "second"); r.hs[1] == nil {
			r.failf("second handle of an intact queue did not open")
		}
	}
	if cfg&0x40 != 0 {
		if err := q.Shutdown(); err != nil {
			r.failf("Shutdown: %v", err)
		}
	}
	ctl, _, err := objects(q)
	if err != nil {
		r.failf("objects: %v", err)
	}
	applyEdits(ctl, ctlEdits)
	applyEdits(ring, ringEdits)

	if len(ops) == 0 {
		ops = defaultImageOps
	}
	for step, c := range ops[:min(len(ops), 64)] {
		code, hi, variant := int(c&15), int(c>>4&1), c>>5
		r.op = fmt.Sprintf("step %d %s on %d", step, imNames[code], hi)
		if code == imOpen || code == imClose {
			r.manage(code)
			continue
		}
		if code == imCtlEdits || code == imRingEdits {
			h := r.any()
			ctl, ring, err := objects(h.q)
			if err != nil {
				r.failf("objects: %v", err)
			}
			if code == imCtlEdits {
				applyEdits(ctl, ctlEdits)
			} else {
				applyEdits(ring, ringEdits)
			}
			continue
		}
		h := r.hs[hi]
		if h == nil {
			if hi == 1 && r.hs[0] != nil {
				if r.hs[1] = r.open(r.hs[0], "second"); r.hs[1] == nil {
					continue
				}
				h = r.hs[1]
			} else {
				h = r.any()
			}
		}
		r.call(h, code, variant)
		r.checkLen(h)
	}
}

// manage opens the second handle again, or closes the creator's. A closed
// handle answers ErrClosed, whatever the memory holds.
func (r *imageRun) manage(code int) {
	closeHandle := func(h *imHandle) {
		if err := h.q.Close(); err != nil {
			r.failf("Close: %v", err)
		}
		if msg := probeClosed(h.q, context.Background()); msg != "" {
			r.failf("%s: %s", h.name, msg)
		}
	}
	if code == imOpen {
		nh := r.open(r.any(), "second")
		if nh == nil {
			return // keep a handle
		}
		if old := r.hs[1]; old != nil {
			closeHandle(old)
		}
		r.hs[1] = nh
		return
	}
	if r.hs[0] == nil {
		return
	}
	if r.hs[1] == nil {
		if r.hs[1] = r.open(r.hs[0], "second"); r.hs[1] == nil {
			return // keep one handle
		}
	}
	closeHandle(r.hs[0])
	r.hs[0] = nil
}

var imageSizes = [8]int{0, 5, 48, 49, 17, 64, 8, 1}

func (r *imageRun) call(h *imHandle, code int, variant byte) {
	ctx := r.ctx
	if variant&1 == 0 && code >= imGet {
		wait := 300 * time.Microsecond
		if variant == 6 && r.long > 0 {
			r.long--
			wait = 15 * time.Millisecond // past the 10 ms grace for a stuck claim
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), wait)
		defer cancel()
		before, start := h.q.Stats(), time.Now()
		defer func() { r.checkSlept(h, code == imPut, before, time.Since(start)) }()
	}
	switch code {
	case imTryGet:
		msg, err := h.q.TryGet()
		r.checkErr(h, err)
		r.checkMsg(h, msg)
	case imTryGetInto, imGetInto:
		buf := make([]byte, [4]int{0, 7, 64, 200}[variant&3])
		var n int
		var err error
		if code == imGetInto {
			n, err = h.q.GetInto(ctx, buf)
		} else {
			n, err = h.q.TryGetInto(buf)
		}
		r.checkErr(h, err)
		if err == nil && (n < 0 || n > len(buf) || n > h.q.MaxMessage()) {
			r.failf("%s: GetInto = %d into %d bytes (max %d)", h.name, n, len(buf), h.q.MaxMessage())
		}
	case imGet:
		msg, err := h.q.Get(ctx)
		r.checkErr(h, err)
		r.checkMsg(h, msg)
	case imPeek:
		calls := 0
		err := h.q.WithPeek(ctx, func(msg []byte) error {
			calls++
			r.checkMsg(h, msg)
			r.checkInRing(h, msg)
			return nil
		})
		r.checkErr(h, err)
		if calls > 1 || calls == 1 != (err == nil) {
			r.failf("%s: WithPeek = %v, called back %d times", h.name, err, calls)
		}
	case imTryPut, imPut:
		msg := message(int(variant), imageSizes[variant])
		var err error
		if code == imPut {
			err = h.q.Put(ctx, msg)
		} else {
			err = h.q.TryPut(msg)
		}
		if len(msg) > h.q.MaxMessage() {
			// Checked before anything else, a broken handle too.
			if !errors.Is(err, ringbuf.ErrTooLarge) {
				r.failf("%s: put of %d bytes = %v, MaxMessage %d", h.name, len(msg), err, h.q.MaxMessage())
			}
			return
		}
		r.checkErr(h, err)
	case imReserve:
		n := imageSizes[variant]
		calls := 0
		err := h.q.WithReserve(ctx, n, func(room []byte) (int, error) {
			calls++
			if len(room) != n {
				r.failf("%s: WithReserve(%d) called back with %d bytes", h.name, n, len(room))
			}
			r.checkInRing(h, room)
			copy(room, message(99, n))
			return n, nil
		})
		if n > h.q.MaxMessage() {
			if !errors.Is(err, ringbuf.ErrTooLarge) || calls != 0 {
				r.failf("%s: WithReserve(%d) = %v, called back %d times, max %d", h.name, n, err, calls, h.q.MaxMessage())
			}
			return
		}
		r.checkErr(h, err)
		if calls > 1 || err == nil && calls == 0 {
			r.failf("%s: WithReserve(%d) = %v, called back %d times", h.name, n, err, calls)
		}
	case imPutBatch:
		msgs := [][]byte{message(1, imageSizes[variant]), message(2, imageSizes[(variant+1)&7])}
		k, err := h.q.PutBatch(ctx, msgs)
		r.checkErr(h, err)
		if k < 0 || k > 2 || err == nil && k != 2 {
			r.failf("%s: PutBatch = %d, %v", h.name, k, err)
		}
	case imGetBatch:
		buf := make([]byte, [4]int{0, 16, 128, 300}[variant&3])
		sizes := make([]int, 1+int(variant>>2))
		k, err := h.q.GetBatch(ctx, buf, sizes)
		r.checkErr(h, err)
		used := 0
		for i := 0; i < k && i < len(sizes); i++ {
			if sizes[i] < 0 || sizes[i] > h.q.MaxMessage() {
				r.failf("%s: GetBatch size %d, max %d", h.name, sizes[i], h.q.MaxMessage())
			}
			used += sizes[i]
		}
		// Corruption found after k messages comes with them.
		if k < 0 || k > len(sizes) || used > len(buf) || err == nil && k == 0 || err != nil && k != 0 && !errors.Is(err, ringbuf.ErrCorrupt) {
			r.failf("%s: GetBatch = %d (%v, %d of %d bytes), %v", h.name, k, sizes, used, len(buf), err)
		}
	case imStats:
		st := h.q.Stats()
		if st.Closed != h.q.Stats().Closed {
			r.failf("%s: Closed flips", h.name)
		}
	case imShutdown:
		// A broken handle refuses it with its ErrCorrupt; else it works.
		err := h.q.Shutdown()
		if h.corrupt {
			r.checkErr(h, err)
		} else if err != nil {
			r.failf("%s: Shutdown: %v", h.name, err)
		}
	}
}
