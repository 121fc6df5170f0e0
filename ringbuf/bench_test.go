package ringbuf

// Cross-process benchmarks: the parent (the benchmark) and a child process
// (re-executed test binary) talk over a transport, next to os.Pipe in the
// same b.Run table. Run with
//
//	go test -run '^$' -bench . -benchmem ./ringbuf
//
// ns/op is per message (Stream) or per round trip (RoundTrip); MB/s counts
// payload bytes. Allocations are the parent's.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkit/shmkit/internal/testutil"
)

// benchLink is one process's end of a message transport.
type benchLink interface {
	send(ctx context.Context, msg []byte) error
	recv(ctx context.Context, buf []byte) (int, error)
	close()
}

// queueLink sends on out and receives on in (either may be nil).
type queueLink struct{ out, in *Queue }

func (l queueLink) send(ctx context.Context, m []byte) error { return l.out.Put(ctx, m) }
func (l queueLink) recv(ctx context.Context, b []byte) (int, error) {
	return l.in.GetInto(ctx, b)
}
func (l queueLink) close() {
	if l.out != nil {
		l.out.Shutdown() // the peer's receive ends with ErrClosed
	}
	for _, q := range []*Queue{l.out, l.in} {
		if q != nil {
			q.Close()
		}
	}
}

// zcLink uses the zero-copy forms: WithReserve and WithPeek.
type zcLink struct{ queueLink }

func (l zcLink) send(ctx context.Context, m []byte) error {
	return l.out.WithReserve(ctx, len(m), func(room []byte) (int, error) {
		return copy(room, m), nil
	})
}

func (l zcLink) recv(ctx context.Context, b []byte) (n int, err error) {
	err = l.in.WithPeek(ctx, func(m []byte) error {
		n = len(m)
		touch(m) // read the payload in place instead of copying it
		return nil
	})
	return n, err
}

// pipeLink frames messages over OS pipes: a 4-byte length, then the bytes,
// written with one write(2) per message (a message transport must deliver
// each message when sent); reads go through a buffer.
type pipeLink struct {
	w, r   *os.File
	frame  []byte
	rbuf   []byte
	rp, rn int
}

func newPipeLink(w, r *os.File, max int) *pipeLink {
	return &pipeLink{w: w, r: r, frame: make([]byte, 4+max), rbuf: make([]byte, 64<<10)}
}

func (l *pipeLink) send(_ context.Context, m []byte) error {
	binary.LittleEndian.PutUint32(l.frame, uint32(len(m)))
	copy(l.frame[4:], m)
	_, err := l.w.Write(l.frame[:4+len(m)])
	return err
}

func (l *pipeLink) fill(n int) error {
	for l.rn-l.rp < n {
		if l.rp > 0 {
			l.rn = copy(l.rbuf, l.rbuf[l.rp:l.rn])
			l.rp = 0
		}
		k, err := l.r.Read(l.rbuf[l.rn:])
		if err != nil {
			return err
		}
		l.rn += k
	}
	return nil
}

func (l *pipeLink) recv(_ context.Context, b []byte) (int, error) {
	if err := l.fill(4); err != nil {
		return 0, err
	}
	n := int(binary.LittleEndian.Uint32(l.rbuf[l.rp:]))
	l.rp += 4
	if n > len(b) {
		return 0, io.ErrShortBuffer
	}
	got := 0
	for got < n { // large messages stream through the buffer
		if l.rp == l.rn {
			if err := l.fill(1); err != nil {
				return 0, err
			}
		}
		c := copy(b[got:n], l.rbuf[l.rp:l.rn])
		got += c
		l.rp += c
	}
	return n, nil
}

func (l *pipeLink) close() {
	if l.w != nil {
		l.w.Close()
	}
	if l.r != nil {
		l.r.Close()
	}
}

func touch(b []byte) byte {
	var s byte
	for i := 0; i < len(b); i += 64 {
		s += b[i]
	}
	return s
}

var benchSizes = []int{8, 64, 4 << 10, 64 << 10, 1 << 20}

// benchTransports builds the parent's link and the files the child needs.
var benchTransports = []struct {
	name  string
	setup func(tb testing.TB, size int, duplex bool) (benchLink, []*os.File)
}{
	{"os.Pipe", setupPipe},
	{"spsc", func(tb testing.TB, size int, duplex bool) (benchLink, []*os.File) {
		return setupQueue(tb, Options{Mode: SPSC, Capacity: ringFor(size), MaxMessage: size}, duplex, false)
	}},
	{"spsc-zerocopy", func(tb testing.TB, size int, duplex bool) (benchLink, []*os.File) {
		return setupQueue(tb, Options{Mode: SPSC, Capacity: ringFor(size), MaxMessage: size}, duplex, true)
	}},
	// Named queues: their calls catch memory faults (the file may be
	// truncated); "-unguarded" turns that off, to measure what it costs.
	{"spsc-named", func(tb testing.TB, size int, duplex bool) (benchLink, []*os.File) {
		return setupNamedQueue(tb, Options{Mode: SPSC, Capacity: ringFor(size), MaxMessage: size}, duplex, true)
	}},
	{"spsc-named-unguarded", func(tb testing.TB, size int, duplex bool) (benchLink, []*os.File) {
		return setupNamedQueue(tb, Options{Mode: SPSC, Capacity: ringFor(size), MaxMessage: size}, duplex, false)
	}},
	{"mpmc", func(tb testing.TB, size int, duplex bool) (benchLink, []*os.File) {
		return setupQueue(tb, Options{Mode: MPMC, Capacity: ringFor(size), MaxMessage: size}, duplex, false)
	}},
}

// ringFor sizes rings at 1 MiB, or 4 messages for large ones.
func ringFor(size int) int { return max(1<<20, 4*(size+64)) }

func setupPipe(tb testing.TB, size int, duplex bool) (benchLink, []*os.File) {
	r1, w1, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	files := []*os.File{r1}
	l := newPipeLink(w1, nil, size)
	if duplex {
		r2, w2, err := os.Pipe()
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, w2)
		l.r = r2
	}
	return l, files
}

func setupQueue(tb testing.TB, o Options, duplex, zc bool) (benchLink, []*os.File) {
	out, err := CreateAnonymous(o)
	if err != nil {
		tb.Fatal(err)
	}
	l := queueLink{out: out}
	f, _ := out.File()
	files := []*os.File{f}
	if duplex {
		if l.in, err = CreateAnonymous(o); err != nil {
			tb.Fatal(err)
		}
		g, _ := l.in.File()
		files = append(files, g)
	}
	if zc {
		return zcLink{l}, files
	}
	return l, files
}

// namedLink is a queueLink over named queues; the child opens them by the
// names in BENCH_QUEUES.
type namedLink struct {
	queueLink
	names string
}

func setupNamedQueue(tb testing.TB, o Options, duplex, guard bool) (benchLink, []*os.File) {
	name := testutil.Name(tb)
	open := func(suffix string) *Queue {
		q, err := Create(name+suffix, o)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { Unlink(name + suffix) })
		q.guarded = guard
		return q
	}
	l := namedLink{queueLink: queueLink{out: open("-ab")}, names: name + "-ab"}
	if duplex {
		l.in = open("-ba")
		l.names += "," + name + "-ba"
	}
	return l, nil
}

func asQueueLink(l benchLink) (queueLink, bool) {
	if nl, ok := l.(namedLink); ok {
		return nl.queueLink, true
	}
	ql, ok := l.(queueLink)
	return ql, ok
}

// linkEnv passes what the child needs beyond files.
func linkEnv(l benchLink) []testutil.Option {
	if nl, ok := l.(namedLink); ok {
		return []testutil.Option{testutil.Env("BENCH_QUEUES", nl.names)}
	}
	return nil
}

// childLink opens the child's end: it receives on file 0 (or the first
// named queue) and, for a duplex link, sends on file 1 (or the second).
func childLink() (benchLink, error) {
	kind := os.Getenv("BENCH_TRANSPORT")
	size, _ := strconv.Atoi(os.Getenv("BENCH_SIZE"))
	duplex := os.Getenv("BENCH_DUPLEX") == "1"
	if kind == "os.Pipe" {
		l := newPipeLink(nil, testutil.InheritedFile(0), size)
		if duplex {
			l.w = testutil.InheritedFile(1)
		}
		return l, nil
	}
	if strings.HasPrefix(kind, "spsc-named") {
		names := strings.Split(os.Getenv("BENCH_QUEUES"), ",")
		in, err := Open(names[0])
		if err != nil {
			return nil, err
		}
		in.guarded = kind == "spsc-named"
		l := queueLink{in: in}
		if duplex {
			if l.out, err = Open(names[1]); err != nil {
				return nil, err
			}
			l.out.guarded = in.guarded
		}
		return l, nil
	}
	in, err := OpenFile(testutil.InheritedFile(0))
	if err != nil {
		return nil, err
	}
	l := queueLink{in: in}
	if duplex {
		if l.out, err = OpenFile(testutil.InheritedFile(1)); err != nil {
			return nil, err
		}
	}
	if kind == "spsc-zerocopy" {
		return zcLink{l}, nil
	}
	return l, nil
}

func init() {
	// bench-sink receives N messages, touching every cache line of each.
	roles["bench-sink"] = func(ctx context.Context) error {
		l, err := childLink()
		if err != nil {
			return err
		}
		defer l.close()
		size, _ := strconv.Atoi(os.Getenv("BENCH_SIZE"))
		buf := make([]byte, size)
		testutil.Signal("ready")
		for {
			msg, err := testutil.Recv(ctx)
			if err != nil {
				return err
			}
			n, _ := strconv.Atoi(msg)
			if n < 0 {
				return nil
			}
			for i := 0; i < n; i++ {
				k, err := l.recv(ctx, buf)
				if err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
				touch(buf[:k])
			}
			testutil.Signal("done")
		}
	}
	// bench-echo sends every message back.
	roles["bench-echo"] = func(ctx context.Context) error {
		l, err := childLink()
		if err != nil {
			return err
		}
		defer l.close()
		size, _ := strconv.Atoi(os.Getenv("BENCH_SIZE"))
		if os.Getenv("BENCH_POLL") == "1" {
			if ql, ok := l.(queueLink); ok {
				ql.in.SetBusyPoll(true)
			}
		}
		buf := make([]byte, size)
		testutil.Signal("ready")
		for {
			n, err := l.recv(ctx, buf)
			if err != nil {
				if errors.Is(err, ErrClosed) || errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if err := l.send(ctx, buf[:n]); err != nil {
				return err
			}
		}
	}
}

func spawnBench(b *testing.B, role, transport string, size int, duplex, poll bool, files []*os.File, extra ...testutil.Option) *testutil.Child {
	env := []testutil.Option{
		testutil.Files(files...),
		testutil.Env("BENCH_TRANSPORT", transport),
		testutil.Env("BENCH_SIZE", strconv.Itoa(size)),
	}
	if duplex {
		env = append(env, testutil.Env("BENCH_DUPLEX", "1"))
	}
	if poll {
		env = append(env, testutil.Env("BENCH_POLL", "1"))
	}
	env = append(env, extra...)
	c := testutil.Spawn(b, role, env...)
	for _, f := range files {
		f.Close()
	}
	if err := c.Await(context.Background(), "ready"); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkStream: one-way streaming from this process to a child.
func BenchmarkStream(b *testing.B) {
	for _, size := range benchSizes {
		for _, tr := range benchTransports {
			b.Run(fmt.Sprintf("%s/%d", tr.name, size), func(b *testing.B) {
				ctx := context.Background()
				l, files := tr.setup(b, size, false)
				defer l.close()
				c := spawnBench(b, "bench-sink", tr.name, size, false, false, files, linkEnv(l)...)
				msg := make([]byte, size)
				for i := range msg {
					msg[i] = byte(i)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				c.Send(strconv.Itoa(b.N))
				for i := 0; i < b.N; i++ {
					if err := l.send(ctx, msg); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.Await(ctx, "done"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Send("-1")
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				// How the wait went: kernel sleeps, FUTEX_WAKE calls and empty or
				// full looks per message, summed over both processes.
				if ql, ok := asQueueLink(l); ok {
					st := ql.out.Stats()
					b.ReportMetric(float64(st.Sleeps)/float64(b.N), "sleeps/op")
					b.ReportMetric(float64(st.Wakeups)/float64(b.N), "wakes/op")
					b.ReportMetric(float64(st.EmptyEvents)/float64(b.N), "empty/op")
					b.ReportMetric(float64(st.FullEvents)/float64(b.N), "full/op")
				}
			})
		}
	}
}

// BenchmarkRoundTrip: ping-pong of 64-byte messages with a child. "poll":
// the child busy-polls; "sleep": both sides idle 200µs between round trips,
// so each message must wake a sleeping peer. Reports p50 and p99.
func BenchmarkRoundTrip(b *testing.B) {
	const size = 64
	for _, mode := range []string{"poll", "sleep"} {
		for _, tr := range benchTransports {
			if tr.name == "spsc-zerocopy" {
				continue
			}
			b.Run(mode+"/"+tr.name, func(b *testing.B) {
				ctx := context.Background()
				l, files := tr.setup(b, size, true)
				defer l.close()
				poll := mode == "poll"
				if ql, ok := asQueueLink(l); ok && poll {
					ql.in.SetBusyPoll(true)
				}
				c := spawnBench(b, "bench-echo", tr.name, size, true, poll, files, linkEnv(l)...)
				msg := make([]byte, size)
				buf := make([]byte, size)
				lat := make([]time.Duration, b.N)
				b.ReportAllocs()
				b.ResetTimer()
				var total time.Duration
				for i := 0; i < b.N; i++ {
					if !poll {
						b.StopTimer()
						time.Sleep(200 * time.Microsecond)
						b.StartTimer()
					}
					t0 := time.Now()
					if err := l.send(ctx, msg); err != nil {
						b.Fatal(err)
					}
					if _, err := l.recv(ctx, buf); err != nil {
						b.Fatal(err)
					}
					lat[i] = time.Since(t0)
					total += lat[i]
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
				l.close()
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
