//go:build linux

package fuzz

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
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
// fuzzing run can look past it (the harness then avoids the state or
// accepts the result). The checks are:
//
//	spsc-empty-full      SPSC: ErrFull with nothing in the ring (the head
//	                     was not published when the ring ran empty)
//	consumer-handoff     SPSC: a consumer handle detaches without publishing
//	                     its head; the next consumer gets messages again
//	len-range            Len and Stats.Len outside [0, capacity] on a
//	                     corrupt ring
//	mpmc-closed-spin     MPMC: a blocking get on a closed queue whose head
//	                     position is claimed by a live producer spins and
//	                     never returns, whatever its ctx
//	mpmc-stale-lap-spin  MPMC: the same when the head's slot holds the
//	                     previous lap while tail > head (a corrupt ring)
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

// Geometries an input chooses from (see newOpsRun): small rings so that
// full, wrap-around and padding happen within a few operations, and
// MaxMessage values around every rounding boundary.
var (
	spscCaps = [...]int{64, 100, 128, 256, 512, 1024, 33, 2048}
	mpmcCaps = [...]int{64, 200, 256, 512, 1000, 1024, 4096, 8192}
	maxMsgs  = [...]int{0, 1, 7, 8, 9, 16, 23, 24, 25, 47, 48, 49, 56, 100, 120, 500}
)

// Operations of FuzzQueueOps. An operation byte is opcode (low 4 bits),
// handle (bit 4) and variant (bits 5-7); the operation's parameters follow.
const (
	opTryPut     = iota // len
	opTryGet            //
	opTryGetInto        // buflen
	opPutBatch          // count (variant%5), then a len each
	opGetBatch          // buflen; sizes = variant%5
	opReserve           // len; variant 7: a negative size
	opCommit            // len
	opPeek              //
	opRelease           //
	opStats             //
	opClose             //
	opPut               // len
	opGet               // buflen; odd variant: GetInto
	opReopen            // replace the handle by a new one (OpenFile)
	opFill              // len: TryPut until it fails
	opDrain             // TryGet until it fails
)

var opNames = [...]string{"TryPut", "TryGet", "TryGetInto", "PutBatch", "GetBatch", "Reserve", "Commit",
	"Peek", "Release", "Stats", "Close", "Put", "Get", "Reopen", "Fill", "Drain"}

// entry is one message in the model, in queue order.
type entry struct {
	data    []byte
	pending bool   // reserved, not yet committed: in the ring's order, not readable
	start   uint64 // SPSC: ring position of its record (after any padding)
	end     uint64 // SPSC: ring position after its record
	pos     uint64 // MPMC: its position
}

type qhandle struct {
	q            *ringbuf.Queue
	name         string
	resv         *entry // outstanding Reserve
	resvN        int
	resvBuf      []byte
	resvID       int
	resvPrevTail uint64 // model tail before the reservation (SPSC)
	peek         *entry // outstanding Peek
}

// opsRun holds the model of one input's queue. Every call's result is
// checked against it: messages come out in order and intact; ErrEmpty only
// when nothing is readable; ErrFull exactly when the ring has no room (the
// model tracks SPSC byte positions and padding, and MPMC slots not yet
// freed); ErrTooLarge exactly above MaxMessage; ErrShortBuffer leaves the
// message; after Close puts fail and gets drain; Stats agree.
type opsRun struct {
	fail   func(format string, args ...any)
	logf   func(format string, args ...any) // SHMKIT_FUZZ_TRACE=1: every step
	traced bool

	mode   ringbuf.Mode
	maxMsg int
	cap    uint64 // SPSC ring bytes, MPMC slots
	hs     [2]*qhandle
	nextH  int
	ctx    context.Context // already cancelled
	op     string          // current operation, for messages

	prod, cons *qhandle // SPSC sides (the model of the role words)
	q          []*entry
	nextID     int
	closed     bool
	puts, gets uint64
	bIn, bOut  uint64
	tail, head uint64          // SPSC byte positions; MPMC: tail position
	unfreed    map[uint64]bool // MPMC positions whose slot is not yet free
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
	if len(r.q) > 0 {
		return len(r.q[0].data)
	}
	return 0
}

// room says whether a record of n bytes fits now, and where the producer's
// position will be after it. For SPSC, ok uses the end of the last record
// consumed, and okAtMost the start of the next record not consumed yet (the
// consumer may have skipped the padding between them): the producer's view
// of the head lies between (or below, as the consumer publishes lazily).
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
	next := r.tail
	if len(r.q) > 0 {
		next = r.q[0].start
	}
	for _, h := range r.hs {
		if h != nil && h.peek != nil {
			next = h.peek.start
		}
	}
	return end, end-r.head <= r.cap, end-next <= r.cap
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
		r.puts++
		r.bIn += uint64(len(data))
	}
	return e
}

// free accounts for the consumer releasing e's space.
func (r *opsRun) free(e *entry) {
	if r.mode == ringbuf.MPMC {
		delete(r.unfreed, e.pos)
	} else {
		r.head = e.end
	}
}

func (r *opsRun) pop() *entry {
	e := r.q[0]
	r.q = r.q[1:]
	r.bOut += uint64(len(e.data))
	return e
}

// occupied says whether anything holds space in the ring: messages,
// reservations, or messages peeked and not yet released.
func (r *opsRun) occupied() bool {
	for _, h := range r.hs {
		if h != nil && h.peek != nil {
			return true
		}
	}
	return len(r.q) > 0
}

// checkRoom checks a put of n bytes that failed with full (isFull) or
// succeeded (err nil) against the ring's room. MPMC is exact. An SPSC
// consumer publishes its head lazily, so a producer may see less room than
// there is, but only while something is queued: an empty ring always has
// room for a message of MaxMessage.
func (r *opsRun) checkRoom(n int, isFull bool, err error) (put bool) {
	_, fits, fitsAtMost := r.room(n)
	switch {
	case isFull && !fits:
		return false
	case isFull && r.mode == ringbuf.SPSC && (r.occupied() || known("spsc-empty-full")):
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

// producerGate is the check every put makes before it looks at the
// message: closed, then (SPSC) the producer side.
func (r *opsRun) producerGate(h *qhandle) error {
	if r.closed {
		return ringbuf.ErrClosed
	}
	if r.mode == ringbuf.SPSC {
		if r.prod != nil && r.prod != h {
			return ringbuf.ErrRole
		}
		r.prod = h
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

// front is the message a get takes now, or nil.
func (r *opsRun) front() *entry {
	if len(r.q) > 0 && !r.q[0].pending {
		return r.q[0]
	}
	return nil
}

// wantNothing checks the error of a get that found nothing readable (the
// queue is empty or its next position is an outstanding reservation).
// Blocking gets (ctx already done) report it as ctx's error.
func (r *opsRun) wantNothing(err error, blocking bool) {
	empty := func(err error) bool {
		if blocking {
			return isCtxErr(err)
		}
		return errors.Is(err, ringbuf.ErrEmpty)
	}
	switch {
	case !r.closed:
		if !empty(err) {
			r.failf("err = %v on an empty queue (%d outstanding reservations)", err, len(r.q))
		}
	case len(r.q) == 0:
		r.want(err, ringbuf.ErrClosed)
	default:
		// Closed, and the next position is a reservation. If messages
		// whose puts returned wait behind it, the queue is not drained.
		behind := 0
		for _, e := range r.q {
			if !e.pending {
				behind++
			}
		}
		if behind > 0 && !empty(err) {
			r.failf("err = %v: closed queue holds %d published messages behind an outstanding reservation", err, behind)
		}
		if behind == 0 && !empty(err) && !errors.Is(err, ringbuf.ErrClosed) {
			r.failf("err = %v on a closed queue whose last position is reserved", err)
		}
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
	if gate := r.producerGate(h); gate != nil {
		r.want(err, gate)
		return false
	}
	if n > r.maxMsg {
		r.want(err, ringbuf.ErrTooLarge)
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
	default:
		r.checkRoom(len(msgs[k]), isCtxErr(err), err)
	}
}

func (r *opsRun) reserve(h *qhandle, n int, variant byte) {
	ctx, cancel := r.ctxFor(variant)
	b, err := h.q.Reserve(ctx, n)
	cancel()
	if n < 0 || n > r.maxMsg {
		if !errors.Is(err, ringbuf.ErrTooLarge) && !errors.Is(err, ringbuf.ErrInvalid) {
			r.failf("Reserve(%d) = %v, want ErrTooLarge", n, err)
		}
		return
	}
	if gate := r.producerGate(h); gate != nil {
		r.want(err, gate)
		return
	}
	if !r.checkRoom(n, isCtxErr(err), err) {
		return
	}
	if len(b) != n || cap(b) != n {
		r.failf("Reserve(%d) = %d bytes (cap %d), %v", n, len(b), cap(b), err)
	}
	id := r.nextID
	r.nextID++
	copy(b, message(id, n))
	prevTail := r.tail
	h.resv, h.resvN, h.resvBuf, h.resvID = r.push(nil, n, true), n, b, id
	h.resvPrevTail = prevTail
}

func (r *opsRun) commit(h *qhandle, m int) {
	err := h.q.Commit(m)
	if h.resv == nil {
		r.want(err, ringbuf.ErrInvalid)
		return
	}
	if m < 0 || m > h.resvN {
		r.want(err, ringbuf.ErrInvalid) // the reservation stays
		return
	}
	if r.mode == ringbuf.SPSC && r.closed {
		// An SPSC reservation is not published after Close: consumers
		// draining the closed queue may be gone.
		r.want(err, ringbuf.ErrClosed)
		r.q = r.q[:len(r.q)-1]
		r.tail = h.resvPrevTail
		h.resv = nil
		return
	}
	if err != nil {
		r.failf("Commit(%d) of %d: %v", m, h.resvN, err)
	}
	e := h.resv
	e.data, e.pending = message(h.resvID, h.resvN)[:m], false
	if r.mode == ringbuf.SPSC {
		if r.q[len(r.q)-1] != e {
			r.failf("model: SPSC reservation not last")
		}
		r.tail = e.end - recSize(h.resvN) + recSize(m)
		e.end = r.tail
	}
	r.puts++
	r.bIn += uint64(m)
	h.resv, h.resvBuf = nil, nil
}

// ---- consumers ----

func (r *opsRun) get(h *qhandle, bufLen int, into, blocking bool, variant byte) {
	if blocking && r.closedSpin() {
		return
	}
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
	r.checkMsg(got, r.pop())
	r.free(e)
	r.gets++
}

func (r *opsRun) getBatch(h *qhandle, bufLen, nsizes int, variant byte) {
	if nsizes > 0 && r.closedSpin() {
		return
	}
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
		e := r.front()
		if e == nil || sizes[i] != len(e.data) || used+sizes[i] > bufLen {
			r.failf("GetBatch took %d, message %d of %d bytes (buf %d, used %d); model has %v", k, i, sizes[i], bufLen, used, e != nil)
		}
		r.checkMsg(buf[used:used+sizes[i]], r.pop())
		r.free(e)
		r.gets++
		used += sizes[i]
	}
	// It takes every message that fits.
	if e := r.front(); e != nil && k < nsizes && used+len(e.data) <= bufLen {
		r.failf("GetBatch stopped after %d messages (%d bytes of %d); the next, %d bytes, fits", k, used, bufLen, len(e.data))
	}
}

func (r *opsRun) peek(h *qhandle, variant byte) {
	if r.closedSpin() {
		return
	}
	ctx, cancel := r.ctxFor(variant)
	msg, err := h.q.Peek(ctx)
	cancel()
	if gate := r.consumerGate(h); gate != nil {
		r.want(err, gate)
		return
	}
	e := r.front()
	if e == nil {
		r.wantNothing(err, true)
		return
	}
	if err != nil {
		r.failf("Peek (%d queued): %v", len(r.q), err)
	}
	r.checkMsg(msg, r.pop())
	h.peek = e
}

func (r *opsRun) release(h *qhandle) {
	err := h.q.Release()
	if h.peek == nil {
		r.want(err, ringbuf.ErrInvalid)
		return
	}
	if err != nil {
		r.failf("Release: %v", err)
	}
	r.free(h.peek)
	r.gets++
	h.peek = nil
}

// finishProducer / finishConsumer end an outstanding Reserve / Peek, which
// hold the handle's side: a put (get) through the same handle would wait.
func (r *opsRun) finishProducer(h *qhandle) {
	if h.resv != nil {
		r.commit(h, h.resvN)
	}
}

func (r *opsRun) finishConsumer(h *qhandle) {
	if h.peek != nil {
		r.release(h)
	}
}

// closedSpin says whether a blocking get now would hit mpmc-closed-spin.
func (r *opsRun) closedSpin() bool {
	return known("mpmc-closed-spin") && r.mode == ringbuf.MPMC && r.closed && len(r.q) > 0 && r.q[0].pending
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

func (r *opsRun) detach(h *qhandle) {
	r.finishProducer(h)
	r.finishConsumer(h)
	if err := h.q.Detach(); err != nil {
		r.failf("Detach: %v", err)
	}
	if r.prod == h {
		r.prod = nil
	}
	if r.cons == h {
		r.cons = nil
	}
}

func (r *opsRun) checkStats(h *qhandle) {
	st := h.q.Stats()
	wantLen := len(r.q) // MPMC: positions taken, reservations included
	if r.mode == ringbuf.SPSC {
		wantLen = int(r.puts - r.gets) // from the counters: peeked messages count
	}
	if st.Puts != r.puts || st.Gets != r.gets || st.BytesIn != r.bIn || st.BytesOut != r.bOut ||
		st.Closed != r.closed || st.Len != wantLen || st.DeadProducerSlots != 0 || st.DeadConsumerLosses != 0 {
		r.failf("Stats = %+v; want puts %d gets %d in %d out %d len %d closed %v",
			st, r.puts, r.gets, r.bIn, r.bOut, wantLen, r.closed)
	}
	if n := h.q.Len(); n != wantLen {
		r.failf("Len = %d, want %d", n, wantLen)
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
		// MPMC: reserve, commit shorter, peek/release, close and drain.
		{mpmc | 2<<3, 9, op(opReserve, 0, 0), 20, op(opTryPut, 0, 0), 3, op(opCommit, 0, 0), 10,
			op(opTryPut, 0, 0), 30, op(opPeek, 0, 0), op(opTryPut, 0, 0), 1, op(opRelease, 0, 0),
			op(opClose, 0, 0), op(opTryPut, 0, 0), 1, op(opGet, 0, 0), 0, op(opDrain, 0, 0), op(opGet, 0, 1), 0},
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

// runOps decodes and runs one FuzzQueueOps input. Its first two bytes
// choose the queue: byte 0 bit 0 MPMC, bit 1 BusyPoll, bit 2 default spin
// (else none), bits 3-5 the capacity; byte 1 MaxMessage (bit 7: the SPSC
// limit, -1..+2).
func runOps(fail, logf func(string, ...any), data []byte) {
	in := &bytesIn{data}
	c0, c1 := in.byte(), in.byte()
	opts := ringbuf.Options{Mode: ringbuf.SPSC, Participants: 4, Spin: -1, BusyPoll: c0&2 != 0}
	if c0&4 != 0 {
		opts.Spin = 0
	}
	capIdx := int(c0>>3) & 7
	opts.MaxMessage = maxMsgs[int(c1)%len(maxMsgs)]
	r := &opsRun{fail: fail, logf: logf, traced: logf != nil, unfreed: map[uint64]bool{}, op: "create"}
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
			q.Detach()
			r.failf("MPMC Cap = %d", r.cap)
		}
	}
	if q.Mode() != r.mode || q.MaxMessage() != r.maxMsg || uint64(q.Cap()) != r.cap {
		q.Detach()
		r.failf("queue %v max %d cap %d", q.Mode(), q.MaxMessage(), q.Cap())
	}
	r.hs[0] = &qhandle{q: q, name: "h0"}
	defer func() {
		for _, h := range r.hs {
			if h != nil {
				h.q.Detach()
			}
		}
	}()
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.ctx = cctx

	for steps := 0; in.more() && steps < 256; steps++ {
		c := in.byte()
		code, hi, variant := int(c&15), int(c>>4&1), c>>5
		if r.hs[hi] == nil && code != opReopen {
			hi = 1 - hi
		}
		h := r.hs[hi]
		r.op = fmt.Sprintf("step %d %s on %v", steps, opNames[code], hi)
		switch code {
		case opTryPut, opPut, opFill:
			r.finishProducer(h)
			n := r.length(in.byte(), r.maxMsg)
			if code == opFill {
				for i := 0; i < 600 && r.tryPut(h, n, false, variant); i++ {
				}
			} else {
				r.tryPut(h, n, code == opPut, variant)
			}
		case opTryGet:
			r.finishConsumer(h)
			r.get(h, 0, false, false, variant)
		case opTryGetInto:
			r.finishConsumer(h)
			r.get(h, r.length(in.byte(), r.frontLen()), true, false, variant)
		case opGet:
			r.finishConsumer(h)
			r.get(h, r.length(in.byte(), r.frontLen()), variant&2 != 0, true, variant)
		case opDrain:
			r.finishConsumer(h)
			for i := 0; i < 1100; i++ {
				stop := r.front() == nil || r.mode == ringbuf.SPSC && r.cons != nil && r.cons != h
				r.get(h, 0, false, false, variant)
				if stop {
					break
				}
			}
		case opPutBatch:
			r.finishProducer(h)
			ns := make([]int, variant%5)
			for i := range ns {
				ns[i] = r.length(in.byte(), r.maxMsg)
			}
			r.putBatch(h, ns, variant)
		case opGetBatch:
			r.finishConsumer(h)
			r.getBatch(h, r.length(in.byte(), r.frontLen()), int(variant%5), variant)
		case opReserve:
			r.finishProducer(h)
			n := r.length(in.byte(), r.maxMsg)
			if variant == 7 {
				n = -1 - n
			}
			r.reserve(h, n, variant)
		case opCommit:
			n := 0
			if h.resv != nil {
				n = r.length(in.byte(), h.resvN)
			}
			r.commit(h, n)
		case opPeek:
			r.finishConsumer(h)
			r.peek(h, variant)
		case opRelease:
			r.release(h)
		case opStats:
		case opClose:
			if err := h.q.Close(); err != nil {
				r.failf("Close: %v", err)
			}
			r.closed = true
		case opReopen:
			if old := r.hs[hi]; old != nil && old == r.cons && known("consumer-handoff") {
				break
			}
			from := r.hs[0]
			if from == nil {
				from = r.hs[1]
			}
			nh := r.open(from)
			if old := r.hs[hi]; old != nil {
				r.detach(old)
			}
			r.hs[hi] = nh
		}
		r.checkStats(r.any())
		if r.traced {
			ctl, _, _ := objects(r.any().q)
			r.logf("%s: model %d queued, tail %d head %d, puts %d gets %d, closed %v; ring tail %d head %d",
				r.op, len(r.q), r.tail, r.head, r.puts, r.gets, r.closed,
				binary.LittleEndian.Uint64(ctl[offTail:]), binary.LittleEndian.Uint64(ctl[offHead:]))
		}
	}

	// Whatever is left comes out intact, in order.
	r.op = "final drain"
	for _, h := range r.hs {
		if h != nil {
			r.finishProducer(h)
			r.finishConsumer(h)
		}
	}
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
// mpmc.go (layout version 1), for seeds that aim at one field. The fuzzer
// reaches every byte without them; TestRingLayout pins them.
const (
	offMode      = 0
	offMaxMsg    = 4
	offCapacity  = 8
	offSlotSize  = 16
	offTail      = 128
	offProducer  = 136
	offHead      = 256
	offConsumer  = 264
	offNotEmpty  = 384 // seq; waiters at +4
	offClosed    = 64
	offStats     = 768 // a 128-byte line per participant slot
	statsLineLen = 128
	stPuts       = 0
	stGets       = 8
	stClaimPut   = 64
	stClaimGet   = 72

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

// TestRingLayout pins the offsets above against live queues: three
// messages put and got, the ring found empty (SPSC: which publishes the
// head), and one more put.
func TestRingLayout(t *testing.T) {
	le := binary.LittleEndian
	for _, opts := range imageOpts {
		q, err := ringbuf.CreateAnonymous(opts)
		if err != nil {
			t.Fatal(err)
		}
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
		if err := q.TryPut(message(3, 5)); err != nil {
			t.Fatal(err)
		}
		q.Close()
		ctl, ring, err := objects(q)
		if err != nil {
			t.Fatal(err)
		}
		line := ctl[offStats+statsLineLen*q.Segment().Self().Slot():]
		ok := le.Uint32(ctl[offMode:]) == uint32(opts.Mode) && le.Uint32(ctl[offMaxMsg:]) == uint32(opts.MaxMessage) &&
			le.Uint64(ctl[offCapacity:]) == uint64(q.Cap()) && le.Uint32(ctl[offClosed:]) == 1 &&
			le.Uint64(line[stPuts:]) == 4 && le.Uint64(line[stGets:]) == 3 &&
			len(ctl) == offStats+statsLineLen*imageParts
		if opts.Mode == ringbuf.SPSC {
			self := uint32(q.Segment().Self())
			ok = ok && le.Uint64(ctl[offTail:]) == 96 && le.Uint64(ctl[offHead:]) == 80 &&
				le.Uint32(ctl[offProducer:]) == self && le.Uint32(ctl[offConsumer:]) == self &&
				le.Uint32(ring[0:]) == 5 && le.Uint32(ring[4:]) == recData && le.Uint32(ring[16:]) == 0 &&
				le.Uint32(ring[24:]) == 48 && le.Uint32(ring[28:]) == recData && le.Uint32(ring[80:]) == 5
		} else {
			ok = ok && le.Uint32(ctl[offSlotSize:]) == 64 && q.Cap() == 8 && len(ring) == 8*64 &&
				le.Uint64(ctl[offTail:]) == 4 && le.Uint64(ctl[offHead:]) == 3 &&
				le.Uint64(line[stClaimPut:]) == 4 && le.Uint64(line[stClaimGet:]) == 3 &&
				le.Uint64(ring[0:]) == 8 && le.Uint64(ring[64:]) == 9 && le.Uint64(ring[128:]) == 10 &&
				le.Uint64(ring[192:]) == 4 && le.Uint32(ring[192+8:]) == 5 && le.Uint32(ring[192+12:]) == recData
		}
		if !ok {
			t.Errorf("%v: layout drifted from the harness's offsets:\nctl %x\nline %x\nring %x", opts.Mode, ctl[:offStats], line[:statsLineLen], ring)
		}
		q.Detach()
	}
}

// Operations of FuzzRingImage: an operation byte is opcode (low 4 bits),
// handle (bit 4: the creator's, or a second one opened with OpenFile) and
// variant (bits 5-7).
const (
	imTryGet = iota
	imTryGetInto
	imPeek // and Release
	imTryPut
	imReserve // and Commit
	imPutBatch
	imGetBatch
	imGet // variant 6: wait past the stuck-claim grace
	imPut
	imStats
	imClose
	imOpen   // (re)open the second handle
	imDetach // detach the creator's handle
	imGetInto
	imCtlEdits // apply the control block edits again
	imRingEdits
)

var imNames = [...]string{"TryGet", "TryGetInto", "Peek", "TryPut", "Reserve", "PutBatch", "GetBatch", "Get",
	"Put", "Stats", "Close", "Open", "Detach", "GetInto", "CtlEdits", "RingEdits"}

// onSecond marks an image op to run on the second handle (bit 4).
func onSecond(op byte) byte { return 16 | op }

var defaultImageOps = []byte{imTryGet, imTryGetInto, imPeek, imTryPut, imReserve, imPutBatch, imGetBatch,
	imGet | 1<<5, imPut | 1<<5, imStats, imOpen, onSecond(imTryGet), onSecond(imTryGetInto), onSecond(imPeek), onSecond(imTryPut),
	onSecond(imStats), imClose, imTryGet, onSecond(imTryGet), imDetach, onSecond(imTryPut), onSecond(imTryGet), onSecond(imStats)}

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
	if n := h.q.Len(); (n < 0 || n > bound || st.Len < 0 || st.Len > bound) && !known("len-range") {
		r.failf("%s: Len %d, Stats.Len %d; a %v ring of %d holds at most %d messages", h.name, n, st.Len, h.q.Mode(), h.q.Cap(), bound)
	}
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
		q.Detach()
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
		q.Detach()
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
// block and ring) and then calls every operation through the creator's
// handle and a second one: each must return a sentinel error or a result
// consistent with itself, never panic, hang or reach outside the ring (see
// runImage).
func FuzzRingImage(f *testing.F) {
	const (
		spsc     = 0
		mpmc     = 1
		three    = 3 << 1 // messages put before the overwrite
		getOne   = 1 << 3
		wrap     = 1 << 4
		early    = 1 << 5 // second handle opened before
		closed   = 1 << 6
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
		{mpmc | three | getOne | wrap | early | closed, none, none, none},
		// SPSC counters.
		{spsc | three, edit64(offTail, 1<<62), none, none},
		{spsc | three | getOne, edit64(offHead, 96+8), none, none},
		{spsc | three | getOne, edit64(offHead, 19), none, none},
		{spsc | three, edit64(offTail, 83), none, none},
		{spsc | three | early, cat(edit64(offTail, 1000), edit64(offHead, 744)), none, none},
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
		// Roles, notifiers, closed, counters (counters of 1<<63: see the
		// *-len-negative corpus entries).
		{spsc | three, cat(edit32(offProducer, 0xdeadbeef), edit32(offConsumer, 0)), none,
			[]byte{onSecond(imTryGet), onSecond(imTryPut), onSecond(imPeek), imTryPut, imTryGet}},
		{spsc | three | getOne, cat(edit32(offNotEmpty+4, 5), edit32(offNotEmpty+128+4, 5)), none,
			[]byte{imGet, imPut, imGet, imTryGet, imTryGet, imGet}},
		{mpmc | three, edit32(offClosed, 9), none, none},
		// MPMC slots.
		{mpmc | three, none, edit64(64, 77), none},
		{mpmc | three, none, edit32(8, 49), none},
		{mpmc | three, none, edit32(12, 7), none},
		{mpmc | three, none, cat(edit32(12, recDead), edit32(64+12, recDead)), none},
		{mpmc | three | getOne, cat(edit64(offTail, 9), edit64(offHead, 1)), none, none},
		{mpmc | three | wrap, edit64(offHead, 20), none, none},
		// A claim nobody finishes: consumers wait out the grace and pad it
		// over; producers free a slot its consumer never released.
		{mpmc, edit64(offTail, 1), none, []byte{imGet | 6<<5, imTryGet, imStats}},
		{mpmc, cat(edit64(offTail, 1), edit64(line+stClaimPut, 1)), none, []byte{imGet | 6<<5, imTryGet}},
		{mpmc | three, edit64(offHead, 1), edit64(0, 1), []byte{imTryPut, imTryPut, imTryPut, imTryPut,
			imTryPut, imTryPut, imPut | 6<<5, imTryPut, imStats}},
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
// open the second handle before the overwrite; bit 6 close; bit 7
// BusyPoll), overwrites its control block and ring with the edits, and
// runs ops (a default sequence if empty). Every call must return a
// sentinel error or a result consistent with itself, and never panic or
// hang.
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
		q.Detach()
		r.failf("objects: %v", err)
	}
	r.hs[0] = &imHandle{q: q, name: "creator", ring: ring}
	defer func() {
		for _, h := range r.hs {
			if h != nil {
				h.q.Detach()
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
		q.Close()
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
		if code == imOpen || code == imDetach {
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

// manage opens the second handle again, or detaches the creator's.
func (r *imageRun) manage(code int) {
	if code == imOpen {
		nh := r.open(r.any(), "second")
		if nh == nil {
			return // keep a handle
		}
		if old := r.hs[1]; old != nil {
			if err := old.q.Detach(); err != nil {
				r.failf("Detach: %v", err)
			}
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
	if err := r.hs[0].q.Detach(); err != nil {
		r.failf("Detach: %v", err)
	}
	r.hs[0] = nil
}

var imageSizes = [8]int{0, 5, 48, 49, 17, 64, 8, 1}

// spins says whether a blocking get through h now would hit
// mpmc-closed-spin or mpmc-stale-lap-spin (when those are skipped).
func (r *imageRun) spins(h *imHandle) bool {
	if h.q.Mode() != ringbuf.MPMC || !known("mpmc-closed-spin") && !known("mpmc-stale-lap-spin") {
		return false
	}
	ctl, _, err := objects(h.q)
	if err != nil {
		return false
	}
	le := binary.LittleEndian
	n := uint64(h.q.Cap())
	head, tail := le.Uint64(ctl[offHead:]), le.Uint64(ctl[offTail:])
	seq := le.Uint64(h.ring[(head&(n-1))*(uint64(len(h.ring))/n):])
	return known("mpmc-closed-spin") && le.Uint32(ctl[offClosed:]) != 0 && tail != head ||
		known("mpmc-stale-lap-spin") && head >= n && seq == head+1-n && tail > head
}

func (r *imageRun) call(h *imHandle, code int, variant byte) {
	switch code {
	case imGet, imGetInto, imPeek, imGetBatch:
		if r.spins(h) {
			return
		}
	}
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
		msg, err := h.q.Peek(ctx)
		r.checkErr(h, err)
		if err == nil {
			r.checkMsg(h, msg)
			r.checkInRing(h, msg)
			if err := h.q.Release(); err != nil {
				r.failf("%s: Release after Peek: %v", h.name, err)
			}
		}
	case imTryPut, imPut:
		msg := message(int(variant), imageSizes[variant])
		var err error
		if code == imPut {
			err = h.q.Put(ctx, msg)
		} else {
			err = h.q.TryPut(msg)
		}
		r.checkErr(h, err)
		if err == nil && len(msg) > h.q.MaxMessage() {
			r.failf("%s: put %d bytes, MaxMessage %d", h.name, len(msg), h.q.MaxMessage())
		}
	case imReserve:
		n := imageSizes[variant]
		b, err := h.q.Reserve(ctx, n)
		if n > h.q.MaxMessage() {
			if !errors.Is(err, ringbuf.ErrTooLarge) {
				r.failf("%s: Reserve(%d) = %v, max %d", h.name, n, err, h.q.MaxMessage())
			}
			return
		}
		r.checkErr(h, err)
		if err == nil {
			if len(b) != n {
				r.failf("%s: Reserve(%d) = %d bytes", h.name, n, len(b))
			}
			r.checkInRing(h, b)
			copy(b, message(99, n))
			if err := h.q.Commit(n); err != nil && !errors.Is(err, ringbuf.ErrClosed) {
				r.failf("%s: Commit after Reserve: %v", h.name, err)
			}
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
		if k < 0 || k > len(sizes) || used > len(buf) || err == nil && k == 0 || err != nil && k != 0 {
			r.failf("%s: GetBatch = %d (%v, %d of %d bytes), %v", h.name, k, sizes, used, len(buf), err)
		}
	case imStats:
		st := h.q.Stats()
		if st.Closed != h.q.Stats().Closed {
			r.failf("%s: Closed flips", h.name)
		}
	case imClose:
		if err := h.q.Close(); err != nil {
			r.failf("%s: Close: %v", h.name, err)
		}
	}
}
