package ringbuf

// Cross-process correctness tests, and the harness ("xp") that
// crash_test.go and stress_test.go share. One file over 500 lines: the
// message format, the results segment and the two sides of the harness
// are read together.
//
// Every test runs producers and consumers in real processes (children of
// the test binary, see internal/testutil). A message carries a header of
// 16 bytes — a CRC-32 of everything after it, the producer's id and its
// sequence number — and a pseudo-random payload; its length is random
// between the header and the queue's MaxMessage.
//
// Consumers report through a separate results segment: a bitmap with one
// bit per (producer, sequence number) that they set with an atomic OR (a
// bit already set is a duplicate, which fails the consumer), and per-child
// counters. Each consumer checks every message's checksum and that each
// producer's sequence numbers strictly increase in what it receives. After
// the consumers have drained the closed queue, the parent checks that the
// bits of each producer are exactly 0..made-1 (less the messages a test
// knowingly lost): every message arrived exactly once and intact.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
	"github.com/shmkit/shmkit/shm"
)

func init() {
	roles["xp-producer"] = xpProducer
	roles["xp-consumer"] = xpConsumer
}

// xpRace reports a -race build (the race runtime is 5-10x slower).
var xpRace = sync.OnceValue(func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
})

// xpScale scales a message count for the build and -short.
func xpScale(n int) int {
	if xpRace() {
		n /= 4
	}
	if testing.Short() {
		n /= 4
	}
	return max(n, 64)
}

// Message format.
const xpHdr = 16 // crc32 of b[4:], producer id uint32, sequence uint64

// Environment of the roles.
const (
	xpEnvQueue   = "XP_QUEUE"    // queue name; empty: the queue is inherited file 0
	xpEnvRes     = "XP_RES"      // results segment name
	xpEnvID      = "XP_ID"       // producer id, or consumer index
	xpEnvN       = "XP_N"        // producer: messages to put (0: until the stop flag)
	xpEnvMode    = "XP_MODE"     // put, batch, reserve, try / get, into, batch, peek, try
	xpEnvHang    = "XP_HANG"     // hang at the test hook after this many messages
	xpEnvHangHow = "XP_HANG_HOW" // "kill" (block until killed) or "wait" (until the parent Sends)
	xpEnvSeed    = "XP_SEED"     // random seed
)

const (
	xpStopFlag   = 0                // index in "flags": producers stop putting
	xpFlagsLen   = 4                // length of "flags"
	xpWordBits   = 64               // bits per bitmap word
	xpNoHang     = -1               // XP_HANG unset
	xpBatchMax   = 6                // messages per PutBatch / GetBatch
	xpSegObjects = 8                // objects in the results segment
	xpSegSlack   = 64 << 10         // results segment: bytes beyond the arrays
	xpArrayHdr   = 64               // shm.Array header bytes
	xpEventWait  = 20 * time.Second // bound on one Await
)

// xpFill writes a complete message into b (len(b) >= xpHdr).
func xpFill(b []byte, id uint32, seq uint64) {
	binary.LittleEndian.PutUint32(b[4:], id)
	binary.LittleEndian.PutUint64(b[8:], seq)
	x := uint64(id)<<40 ^ (seq+1)*0x9e3779b97f4a7c15
	for i := xpHdr; i < len(b); i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	binary.LittleEndian.PutUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// xpLen picks a message length in [xpHdr, maxMsg], often at the ends.
func xpLen(rng *rand.Rand, maxMsg int) int {
	switch r := rng.IntN(10); {
	case r == 0:
		return xpHdr
	case r == 1:
		return maxMsg
	default:
		return xpHdr + rng.IntN(maxMsg-xpHdr+1)
	}
}

// xpResults is the results segment: per producer id a range of bits in
// "seen" (starting at base[id], limit[id] = base[id+1]-base[id] long),
// "made" (messages each producer put, stored after each put), "got"
// (messages each consumer took) and "flags".
type xpResults struct {
	seg   *shm.Segment
	base  []uint64
	seen  []uint64
	made  []uint64
	got   []uint64
	flags []uint64
}

func xpCreateResults(name string, limits []int, consumers int) (*xpResults, error) {
	nbits := 0
	for _, l := range limits {
		nbits += l
	}
	words := (nbits + xpWordBits - 1) / xpWordBits
	size := 5*xpArrayHdr + 8*(len(limits)+1+words+len(limits)+consumers+xpFlagsLen) + xpSegSlack
	seg, err := shm.Create(name, int64(size), shm.WithObjects(xpSegObjects))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*xpResults, error) {
		seg.Unlink()
		seg.Close()
		return nil, err
	}
	base, err := shm.NewArray[uint64](seg, "base", len(limits)+1)
	if err != nil {
		return fail(err)
	}
	off := uint64(0)
	for i, l := range limits {
		base.Slice()[i] = off
		off += uint64(l)
	}
	base.Slice()[len(limits)] = off
	for _, o := range []struct {
		name string
		n    int
	}{{"seen", max(words, 1)}, {"made", len(limits)}, {"got", max(consumers, 1)}, {"flags", xpFlagsLen}} {
		if _, err := shm.NewArray[uint64](seg, o.name, o.n); err != nil {
			return fail(err)
		}
	}
	r, err := xpLookupResults(seg)
	if err != nil {
		return fail(err)
	}
	return r, nil
}

func xpOpenResults() (*xpResults, error) {
	seg, err := shm.Open(os.Getenv(xpEnvRes))
	if err != nil {
		return nil, err
	}
	r, err := xpLookupResults(seg)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return r, nil
}

func xpLookupResults(seg *shm.Segment) (*xpResults, error) {
	r := &xpResults{seg: seg}
	for _, o := range []struct {
		name string
		p    *[]uint64
	}{{"base", &r.base}, {"seen", &r.seen}, {"made", &r.made}, {"got", &r.got}, {"flags", &r.flags}} {
		a, err := shm.LookupArray[uint64](seg, o.name)
		if err != nil {
			return nil, fmt.Errorf("results %q: %w", o.name, err)
		}
		*o.p = a.Slice()
	}
	return r, nil
}

func (r *xpResults) ids() int         { return len(r.made) }
func (r *xpResults) limit(id int) int { return int(r.base[id+1] - r.base[id]) }
func (r *xpResults) load(w []uint64, i int) uint64 {
	return atomic.LoadUint64(&w[i])
}
func (r *xpResults) store(w []uint64, i int, v uint64) { atomic.StoreUint64(&w[i], v) }
func (r *xpResults) stopped() bool                     { return r.load(r.flags, xpStopFlag) != 0 }

// bit reports whether the bit of (id, seq) is set.
func (r *xpResults) bit(id int, seq uint64) bool {
	b := r.base[id] + seq
	return atomic.LoadUint64(&r.seen[b/xpWordBits])&(1<<(b%xpWordBits)) != 0
}

// totalGot sums the consumers' counters.
func (r *xpResults) totalGot() uint64 {
	var n uint64
	for i := range r.got {
		n += r.load(r.got, i)
	}
	return n
}

// totalMade sums the producers' counters.
func (r *xpResults) totalMade() uint64 {
	var n uint64
	for i := range r.made {
		n += r.load(r.made, i)
	}
	return n
}

// ---- child side ----

func xpEnvInt(key string, def int) int {
	v, ok := os.LookupEnv(key)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", key, v, err))
	}
	return n
}

func xpOpenQueue(h *hooks) (*Queue, error) {
	var seg *shm.Segment
	var err error
	if name := os.Getenv(xpEnvQueue); name != "" {
		seg, err = shm.OpenKind(name, shm.KindQueue)
	} else {
		f := testutil.InheritedFile(0)
		seg, err = openQueueFile(f)
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	return newQueue(seg, Options{}, h)
}

// xpHang returns a test hook that runs n times normally, then signals
// event and either blocks until the process is killed ("kill") or waits
// for a line from the parent and returns ("wait").
func xpHang(ctx context.Context, n int, event string) func() {
	how := os.Getenv(xpEnvHangHow)
	calls := 0
	return func() {
		calls++
		if calls <= n {
			return
		}
		testutil.Signal(event)
		if how == "wait" {
			if _, err := testutil.Recv(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "hang hook: %v\n", err)
				os.Exit(3)
			}
			return
		}
		<-ctx.Done()
		fmt.Fprintln(os.Stderr, "hang hook: not killed before the deadline")
		os.Exit(3)
	}
}

// xpProducer puts messages id/0, id/1, ... into the queue.
func xpProducer(ctx context.Context) error {
	id := xpEnvInt(xpEnvID, 0)
	h := &hooks{}
	if k := xpEnvInt(xpEnvHang, xpNoHang); k != xpNoHang {
		h.claimed = xpHang(ctx, k, "claimed")
	}
	q, err := xpOpenQueue(h)
	if err != nil {
		return err
	}
	defer q.Close()
	res, err := xpOpenResults()
	if err != nil {
		return err
	}
	defer res.seg.Close()
	n := xpEnvInt(xpEnvN, 0)
	limit := res.limit(id)
	untilStop := n == 0
	if untilStop || n > limit {
		n = limit
	}
	mode := os.Getenv(xpEnvMode)
	rng := rand.New(rand.NewPCG(uint64(xpEnvInt(xpEnvSeed, 1)), uint64(id)))
	maxMsg := q.MaxMessage()
	buf := make([]byte, maxMsg)
	batch := make([][]byte, xpBatchMax)
	for i := range batch {
		batch[i] = make([]byte, maxMsg)
	}
	testutil.Signal("ready")
	seq := 0
	for seq < n {
		if untilStop && res.stopped() {
			break
		}
		switch mode {
		case "batch":
			k := min(1+rng.IntN(xpBatchMax), n-seq)
			msgs := batch[:k]
			for i := range msgs {
				msgs[i] = msgs[i][:xpLen(rng, maxMsg)]
				xpFill(msgs[i], uint32(id), uint64(seq+i))
			}
			done, err := q.PutBatch(ctx, msgs)
			seq += done
			res.store(res.made, id, uint64(seq))
			if err != nil {
				return fmt.Errorf("producer %d: PutBatch at %d: %w", id, seq, err)
			}
			continue
		case "reserve":
			// Reserve the most, commit the message's length.
			l := xpLen(rng, maxMsg)
			err := q.WithReserve(ctx, maxMsg, func(room []byte) (int, error) {
				xpFill(room[:l], uint32(id), uint64(seq))
				return l, nil
			})
			if err != nil {
				return fmt.Errorf("producer %d: WithReserve at %d: %w", id, seq, err)
			}
		case "try":
			m := buf[:xpLen(rng, maxMsg)]
			xpFill(m, uint32(id), uint64(seq))
			for {
				err := q.TryPut(m)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrFull) {
					return fmt.Errorf("producer %d: TryPut at %d: %w", id, seq, err)
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				runtime.Gosched()
			}
		default:
			m := buf[:xpLen(rng, maxMsg)]
			xpFill(m, uint32(id), uint64(seq))
			if err := q.Put(ctx, m); err != nil {
				return fmt.Errorf("producer %d: Put at %d: %w", id, seq, err)
			}
		}
		seq++
		res.store(res.made, id, uint64(seq))
	}
	return nil
}

// xpChecker validates what one consumer receives.
type xpChecker struct {
	res  *xpResults
	idx  int
	last []int64
	n    uint64
}

func (c *xpChecker) check(b []byte) error {
	if len(b) < xpHdr {
		return fmt.Errorf("consumer %d: message %d of %d bytes", c.idx, c.n, len(b))
	}
	if got, want := binary.LittleEndian.Uint32(b), crc32.ChecksumIEEE(b[4:]); got != want {
		return fmt.Errorf("consumer %d: message %d (%d bytes, % x...) has checksum %#x, want %#x",
			c.idx, c.n, len(b), b[:xpHdr], got, want)
	}
	id := int(binary.LittleEndian.Uint32(b[4:]))
	seq := binary.LittleEndian.Uint64(b[8:])
	if id >= c.res.ids() || seq >= uint64(c.res.limit(id)) {
		return fmt.Errorf("consumer %d: message from producer %d seq %d out of range", c.idx, id, seq)
	}
	if int64(seq) <= c.last[id] {
		return fmt.Errorf("consumer %d: producer %d's seq %d after %d: out of order or duplicate", c.idx, id, seq, c.last[id])
	}
	c.last[id] = int64(seq)
	bit := c.res.base[id] + seq
	mask := uint64(1) << (bit % xpWordBits)
	if old := atomic.OrUint64(&c.res.seen[bit/xpWordBits], mask); old&mask != 0 {
		return fmt.Errorf("consumer %d: producer %d's seq %d delivered twice", c.idx, id, seq)
	}
	c.n++
	c.res.store(c.res.got, c.idx, c.n)
	return nil
}

// xpConsumer takes messages until the queue is closed and drained.
func xpConsumer(ctx context.Context) error {
	idx := xpEnvInt(xpEnvID, 0)
	h := &hooks{}
	if k := xpEnvInt(xpEnvHang, xpNoHang); k != xpNoHang {
		h.got = xpHang(ctx, k, "got")
	}
	q, err := xpOpenQueue(h)
	if err != nil {
		return err
	}
	defer q.Close()
	res, err := xpOpenResults()
	if err != nil {
		return err
	}
	defer res.seg.Close()
	c := &xpChecker{res: res, idx: idx, last: make([]int64, res.ids())}
	for i := range c.last {
		c.last[i] = -1
	}
	mode := os.Getenv(xpEnvMode)
	buf := make([]byte, xpBatchMax*q.MaxMessage())
	sizes := make([]int, xpBatchMax)
	testutil.Signal("ready")
	for {
		var err error
		switch mode {
		case "into":
			var n int
			if n, err = q.GetInto(ctx, buf); err == nil {
				err = c.check(buf[:n])
			}
		case "batch":
			// A buffer that holds between one and xpBatchMax messages.
			var k int
			if k, err = q.GetBatch(ctx, buf, sizes); err == nil {
				off := 0
				for _, n := range sizes[:k] {
					if err = c.check(buf[off : off+n]); err != nil {
						break
					}
					off += n
				}
			}
		case "peek":
			err = q.WithPeek(ctx, c.check)
		case "try":
			var m []byte
			m, err = q.TryGet()
			if errors.Is(err, ErrEmpty) {
				if err = ctx.Err(); err == nil {
					runtime.Gosched()
				}
				continue
			}
			if err == nil {
				err = c.check(m)
			}
		default:
			var m []byte
			if m, err = q.Get(ctx); err == nil {
				err = c.check(m)
			}
		}
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("consumer %d (%s) after %d messages: %w", idx, mode, c.n, err)
		}
	}
}

// ---- parent side ----

// xpRun is one cross-process run over one queue.
type xpRun struct {
	t     testing.TB
	ctx   context.Context
	q     *Queue
	qname string // "" for an anonymous queue
	res   *xpResults
	rname string
	seed  uint64
	opts  Options
}

// xpNew creates the queue (named or anonymous) and a results segment for
// producers with the given limits (message counts) and the given number of
// consumers. Cleanup detaches and unlinks both, after the children are
// killed (Spawn's cleanups run first: they are registered later).
func xpNew(t testing.TB, opts Options, named bool, limits []int, consumers int) *xpRun {
	t.Helper()
	r := &xpRun{t: t, ctx: testutil.Context(t), rname: testutil.Name(t), opts: opts, seed: uint64(time.Now().UnixNano())}
	var err error
	if named {
		r.qname = testutil.Name(t)
		r.q, err = Create(r.qname, opts)
	} else {
		r.q, err = CreateAnonymous(opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.q.Close()
		if r.qname != "" {
			Unlink(r.qname)
		}
	})
	r.res, err = xpCreateResults(r.rname, limits, consumers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.res.seg.Unlink()
		r.res.seg.Close()
	})
	return r
}

// spawn starts role with the queue and the results segment.
func (r *xpRun) spawn(role string, id int, mode string, opts ...testutil.Option) *testutil.Child {
	r.t.Helper()
	o := []testutil.Option{
		testutil.Env(xpEnvRes, r.rname), testutil.Env(xpEnvQueue, r.qname),
		testutil.Env(xpEnvID, strconv.Itoa(id)), testutil.Env(xpEnvMode, mode),
		testutil.Env(xpEnvSeed, strconv.FormatUint(r.seed, 10)),
	}
	if r.qname == "" {
		f, err := r.q.File()
		if err != nil {
			r.t.Fatal(err)
		}
		defer f.Close() // the child has its own copy once started
		o = append(o, testutil.Files(f))
	}
	return testutil.Spawn(r.t, role, append(o, opts...)...)
}

func (r *xpRun) producer(id int, mode string, n int, opts ...testutil.Option) *testutil.Child {
	r.t.Helper()
	return r.spawn("xp-producer", id, mode, append([]testutil.Option{testutil.Env(xpEnvN, strconv.Itoa(n))}, opts...)...)
}

func (r *xpRun) consumer(idx int, mode string, opts ...testutil.Option) *testutil.Child {
	r.t.Helper()
	return r.spawn("xp-consumer", idx, mode, opts...)
}

// await waits for event from c, failing the test with diagnostics.
func (r *xpRun) await(c *testutil.Child, event string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, xpEventWait)
	defer cancel()
	if err := c.Await(ctx, event); err != nil {
		r.t.Fatalf("%v\n%s", err, r.diag())
	}
}

// wait waits for every child to exit successfully within d.
func (r *xpRun) wait(d time.Duration, cs ...*testutil.Child) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, d)
	defer cancel()
	for _, c := range cs {
		if err := c.Wait(ctx); err != nil {
			r.t.Fatalf("%v\n%s", err, r.diag())
		}
	}
}

// verify checks that consumers received every message of every producer
// exactly once, except lost ones (messages of consumers killed holding
// them): for producer id, the bits set are a subset of 0..made-1 missing
// exactly lost of them in total.
func (r *xpRun) verify(lost uint64) {
	r.t.Helper()
	var missing, made uint64
	var report []string
	for id := 0; id < r.res.ids(); id++ {
		m := r.res.load(r.res.made, id)
		made += m
		var set uint64
		lo, hi := r.res.base[id], r.res.base[id+1]
		for b := lo; b < hi; b++ {
			if r.res.seen[b/xpWordBits]&(1<<(b%xpWordBits)) != 0 {
				if b-lo >= m {
					r.t.Errorf("producer %d: seq %d received but only %d made", id, b-lo, m)
				}
				set++
			}
		}
		if set < m {
			missing += m - set
			if len(report) < 10 {
				var first []uint64
				for s := uint64(0); s < m && len(first) < 5; s++ {
					if !r.res.bit(id, s) {
						first = append(first, s)
					}
				}
				report = append(report, fmt.Sprintf("producer %d: %d of %d missing (first %v)", id, m-set, m, first))
			}
		}
	}
	if got := r.res.totalGot(); got+lost != made || missing != lost {
		r.t.Errorf("made %d, consumers got %d, missing %d, expected lost %d\n%s\n%s",
			made, got, missing, lost, strings.Join(report, "\n"), r.diag())
	}
}

// diag describes the queue's shared state for a failure message.
func (r *xpRun) diag() string {
	return xpDiag(r.q) + fmt.Sprintf("\nresults: made %d, got %d; seed %d", r.res.totalMade(), r.res.totalGot(), r.seed)
}

func xpDiag(q *Queue) string {
	var b strings.Builder
	st := q.Stats()
	c := q.c
	fmt.Fprintf(&b, "queue %s: tail %#x head %d; stats %+v", c.mode, c.ctl.u64(cTail).Load(), c.ctl.u64(cHead).Load(), st)
	fmt.Fprintf(&b, "\nnotEmpty seq %d waiting %v; notFull seq %d waiting %v",
		c.notEmpty.Seq().Load(), c.notEmpty.Waiting(), c.notFull.Seq().Load(), c.notFull.Waiting())
	if m, ok := q.r.(*mpmcRing); ok {
		b.WriteString("\nslot seqs:")
		for i := uint64(0); i < m.nslots && i < 64; i++ {
			fmt.Fprintf(&b, " %d", m.seq(i).Load())
		}
		b.WriteString("\nclaims (slot put/get alive):")
		for i := 0; i < c.parts; i++ {
			l := c.statsLine(i)
			p, g := l.u64(sClaimPut).Load(), l.u64(sClaimGet).Load()
			if p != 0 || g != 0 {
				tok := c.seg.SlotToken(i)
				fmt.Fprintf(&b, " [%d %d/%d %v]", i, p, g, tok != 0 && c.seg.Alive(tok))
			}
		}
	}
	return b.String()
}

// ---- tests ----

// xpCase is one correctness configuration.
type xpCase struct {
	name      string
	mode      Mode
	capacity  int
	maxMsg    int
	prodModes []string // one producer per entry
	consModes []string // one consumer per entry
	msgs      int      // messages in total, before scaling
	named     bool
}

func xpCases() []xpCase {
	const spscCap, spscMax = 256, 100
	// MPMC: four slots of 128 bytes (16-byte header + 100, rounded to 64).
	const mpmcCap, mpmcMax = 4 * 128, 100
	return []xpCase{
		{"spsc/1p1c/put-get", SPSC, spscCap, spscMax, []string{"put"}, []string{"get"}, 120000, true},
		{"spsc/1p1c/batch-batch", SPSC, spscCap, spscMax, []string{"batch"}, []string{"batch"}, 120000, false},
		{"spsc/1p1c/reserve-peek", SPSC, spscCap, spscMax, []string{"reserve"}, []string{"peek"}, 120000, true},
		{"spsc/1p1c/try-into", SPSC, spscCap, spscMax, []string{"try"}, []string{"into"}, 120000, false},
		// Exactly two records of MaxMessage fill the ring.
		{"spsc/1p1c/tight", SPSC, spscCap, spscCap/2 - recHdr, []string{"put"}, []string{"get"}, 120000, true},
		{"mpmc/1p1c/put-get", MPMC, mpmcCap, mpmcMax, []string{"put"}, []string{"get"}, 120000, true},
		{"mpmc/1p1c/reserve-batch", MPMC, mpmcCap, mpmcMax, []string{"reserve"}, []string{"batch"}, 120000, false},
		{"mpmc/4p4c", MPMC, mpmcCap, mpmcMax,
			[]string{"put", "batch", "reserve", "put"}, []string{"get", "batch", "peek", "into"}, 144000, true},
		{"mpmc/8p8c", MPMC, mpmcCap, mpmcMax,
			[]string{"put", "batch", "reserve", "try", "put", "batch", "reserve", "put"},
			[]string{"get", "batch", "peek", "into", "get", "try", "get", "batch"}, 144000, false},
		// The smallest MPMC ring: two slots.
		{"mpmc/4p4c/2slots", MPMC, 2 * 128, mpmcMax,
			[]string{"put", "batch", "reserve", "try"}, []string{"get", "batch", "peek", "into"}, 144000, true},
	}
}

// TestMultiprocExactlyOnce runs producers and consumers in separate
// processes over tiny rings (full, empty and wrap all the time), with
// children at GOMAXPROCS 1 and 2, and checks that every message arrives
// exactly once, intact, in per-producer order.
func TestMultiprocExactlyOnce(t *testing.T) {
	for _, c := range xpCases() {
		for _, procs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/gomaxprocs%d", c.name, procs), func(t *testing.T) {
				xpExactlyOnce(t, c, procs)
			})
		}
	}
}

func xpExactlyOnce(t *testing.T, c xpCase, procs int) {
	start := time.Now()
	per := xpScale(c.msgs) / len(c.prodModes)
	limits := make([]int, len(c.prodModes))
	for i := range limits {
		limits[i] = per
	}
	r := xpNew(t, Options{Mode: c.mode, Capacity: c.capacity, MaxMessage: c.maxMsg}, c.named, limits, len(c.consModes))
	gmp := testutil.GOMAXPROCS(procs)
	var cons, prods []*testutil.Child
	for i, m := range c.consModes {
		cons = append(cons, r.consumer(i, m, gmp))
	}
	for i, m := range c.prodModes {
		prods = append(prods, r.producer(i, m, per, gmp))
	}
	r.wait(60*time.Second, prods...)
	if err := r.q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r.wait(30*time.Second, cons...)
	r.verify(0)
	for id := range limits {
		if m := r.res.load(r.res.made, id); m != uint64(per) {
			t.Errorf("producer %d made %d messages, want %d", id, m, per)
		}
	}
	st := r.q.Stats()
	if st.Puts != uint64(per*len(limits)) || st.Gets != st.Puts || st.DeadProducerSlots != 0 || st.DeadConsumerLosses != 0 {
		t.Errorf("stats %+v, want %d puts and gets", st, per*len(limits))
	}
	if st.FullEvents == 0 {
		t.Errorf("the ring was never full: stats %+v", st)
	}
	t.Logf("%d messages in %v (%d full, %d empty events, %d sleeps)", st.Gets, time.Since(start).Round(time.Millisecond),
		st.FullEvents, st.EmptyEvents, st.Sleeps)
}
