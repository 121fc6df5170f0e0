package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cellConfig is a short count-based configuration for tests.
func cellConfig(messages, reps int) Config {
	c := Config{Messages: messages, Reps: reps}
	if err := c.fill(); err != nil {
		panic(err)
	}
	return c
}

func runOne(t *testing.T, r *runner, tr *transport, mode string, size int, pc PC) Result {
	t.Helper()
	spec := cellSpec{Transport: tr.name, Mode: mode, Size: size, Producers: pc.Producers, Consumers: pc.Consumers, CPU: -1}
	return r.runCell(context.Background(), cell{tr: tr, spec: spec})
}

// Every transport moves N checksummed messages, one way and there and
// back, between two processes (one, for go-chan).
func TestTransports(t *testing.T) {
	// Sizes: the smallest; a page, past the ring's end several times; one
	// that is no multiple of 8 and longer than the framed readers' buffer.
	cases := []struct{ size, n int }{{8, 1000}, {4 << 10, 1000}, {100_000, 100}}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, mode := range []string{ModeStream, ModeRTT} {
				for _, c := range cases {
					size, n := c.size, c.n
					r := &runner{cfg: cellConfig(n, 1)}
					res := runOne(t, r, tr, mode, size, PC{1, 1})
					if res.Unavailable != "" {
						t.Logf("%s: unavailable: %s", res.label(), res.Unavailable)
						continue
					}
					if res.Err != "" {
						t.Fatalf("%s: %s", res.label(), res.Err)
					}
					if res.Messages != int64(n) || res.MsgsPerSec <= 0 || res.CPUPerMsg <= 0 {
						t.Fatalf("%s: %d messages at %.0f/s, %v CPU each; want %d", res.label(), res.Messages, res.MsgsPerSec, res.CPUPerMsg, n)
					}
					if mode == ModeRTT && !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
						t.Fatalf("%s: percentiles out of order: %v %v %v %v %v", res.label(), res.P50, res.P90, res.P99, res.P999, res.Max)
					}
				}
			}
			if !tr.multi {
				return
			}
			// Several producers and consumers, a small size (os-pipe:
			// one shared pipe, whole frames per write and read).
			const n = 1000
			for _, pc := range []PC{{4, 4}, {3, 2}} {
				r := &runner{cfg: cellConfig(n, 1)}
				res := runOne(t, r, tr, ModeStream, 64, pc)
				if !res.OK() {
					t.Fatalf("%s: %s%s", res.label(), res.Err, res.Unavailable)
				}
				if want := int64(n * pc.Producers); res.Messages != want || res.MsgsPerSec <= 0 {
					t.Fatalf("%s: %d messages at %.0f/s; want %d", res.label(), res.Messages, res.MsgsPerSec, want)
				}
			}
		})
	}
}

// Several producers and consumers, each with its own handle or goroutine.
func TestManyProducersConsumers(t *testing.T) {
	const n = 200
	r := &runner{cfg: cellConfig(n, 2)}
	for _, tr := range transports {
		if !tr.multi {
			continue
		}
		for _, pc := range []PC{{4, 4}, {3, 2}, {1, 3}} {
			res := runOne(t, r, tr, ModeStream, 256, pc)
			if res.Err != "" {
				t.Fatalf("%s: %s", res.label(), res.Err)
			}
			if want := int64(2 * n * pc.Producers); res.Messages != want {
				t.Fatalf("%s: %d messages, want %d", res.label(), res.Messages, want)
			}
		}
	}
}

// faulty wraps the runner's endpoints of an in-process transport.
type faulty struct {
	endpoint
	n    atomic.Int64
	at   int64
	kind string // corrupt, drop, repeat
}

func (f *faulty) send(ctx context.Context, frame []byte) error {
	if f.n.Add(1) != f.at {
		return f.endpoint.send(ctx, frame)
	}
	switch f.kind {
	case "corrupt":
		c := append([]byte(nil), frame...)
		c[len(c)-1] ^= 1
		return f.endpoint.send(ctx, c)
	case "drop":
		return nil
	case "repeat":
		if err := f.endpoint.send(ctx, frame); err != nil {
			return err
		}
	}
	return f.endpoint.send(ctx, frame)
}

// A transport that corrupts, loses or repeats a message fails its cell,
// in both workloads.
func TestFaultsFailLoudly(t *testing.T) {
	r := &runner{cfg: cellConfig(200, 1)}
	cases := []struct {
		kind, mode string
		size       int
		want       string
	}{
		{"corrupt", ModeStream, 4096, "checksum"},
		{"corrupt", ModeStream, 12, "corrupt at byte"},
		{"corrupt", ModeRTT, 64, "checksum"},
		{"drop", ModeStream, 64, "lost, repeated or reordered"},
		{"repeat", ModeStream, 64, "lost, repeated or reordered"},
		{"drop", ModeStream, 8, "lost, repeated or reordered"},
	}
	for _, c := range cases {
		tr := &transport{name: "faulty", inProcess: true, multi: true, setup: func(s cellSpec) (*setup, error) {
			st, err := setupChan(s)
			if err == nil {
				st.eps[0] = &faulty{endpoint: st.eps[0], at: 50, kind: c.kind}
			}
			return st, err
		}}
		t0 := time.Now()
		res := runOne(t, r, tr, c.mode, c.size, PC{1, 1})
		t.Logf("%s %s %d: %v: %s", c.kind, c.mode, c.size, time.Since(t0), res.Err)
		if !strings.Contains(res.Err, c.want) {
			t.Errorf("%s %s %d: error %q, want one about %q", c.kind, c.mode, c.size, res.Err, c.want)
		}
	}
	// With several consumers order is per consumer: totals catch a loss.
	tr := &transport{name: "faulty", inProcess: true, multi: true, setup: func(s cellSpec) (*setup, error) {
		st, err := setupChan(s)
		if err == nil {
			st.eps[0] = &faulty{endpoint: st.eps[0], at: 50, kind: "drop"}
		}
		return st, err
	}}
	if res := runOne(t, r, tr, ModeStream, 64, PC{2, 2}); !strings.Contains(res.Err, "lost or repeated") {
		t.Errorf("2x2 drop: error %q", res.Err)
	}
}

// A pipe shared by several writers or readers keeps frames whole only up
// to PIPE_BUF: larger cells are unavailable, and not planned.
func TestSharedPipeLimit(t *testing.T) {
	r := &runner{cfg: cellConfig(10, 1)}
	tr := lookupTransport(Baseline)
	for _, pc := range []PC{{4, 4}, {2, 1}, {1, 2}} {
		res := runOne(t, r, tr, ModeStream, pipeBuf-headroom+1, pc)
		if !strings.Contains(res.Unavailable, "PIPE_BUF") || res.Err != "" {
			t.Fatalf("%s: unavailable %q, error %q", res.label(), res.Unavailable, res.Err)
		}
	}
	// The largest frame that fits, and a large message at 1x1.
	for _, c := range []struct {
		size int
		pc   PC
	}{{pipeBuf - headroom, PC{4, 4}}, {64 << 10, PC{1, 1}}} {
		if res := runOne(t, r, tr, ModeStream, c.size, c.pc); !res.OK() {
			t.Fatalf("%s: %s%s", res.label(), res.Err, res.Unavailable)
		}
	}
	cfg := Config{Transports: []string{Baseline}, Modes: []string{ModeStream}, StreamSizes: []int{64, pipeBuf - headroom, pipeBuf}, Counts: []PC{{1, 1}, {4, 4}}}
	if err := cfg.fill(); err != nil {
		t.Fatal(err)
	}
	cells, err := cfg.plan()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cells {
		got = append(got, fmt.Sprintf("%d:%dx%d", c.spec.Size, c.spec.Producers, c.spec.Consumers))
	}
	if want := "64:1x1 64:4x4 4092:1x1 4092:4x4 4096:1x1"; strings.Join(got, " ") != want {
		t.Fatalf("planned %v, want %s", got, want)
	}
}

// A PxC cell compares with os-pipe at the same PxC, else at 1x1.
func TestRatioSameCounts(t *testing.T) {
	res := finish([]Result{
		{Transport: Baseline, Mode: ModeStream, Size: 64, Producers: 1, Consumers: 1, MsgsPerSec: 1e6},
		{Transport: Baseline, Mode: ModeStream, Size: 64, Producers: 4, Consumers: 4, MsgsPerSec: 2e6},
		{Transport: "shm-mpmc", Mode: ModeStream, Size: 64, Producers: 4, Consumers: 4, MsgsPerSec: 10e6},
		{Transport: "shm-mpmc", Mode: ModeStream, Size: 64, Producers: 2, Consumers: 2, MsgsPerSec: 3e6},
		{Transport: "shm-mpmc", Mode: ModeStream, Size: 64, Producers: 1, Consumers: 1, MsgsPerSec: 4e6},
	})
	want := map[string]float64{"os-pipe 1x1": 1, "os-pipe 4x4": 1, "shm-mpmc 4x4": 5, "shm-mpmc 2x2": 3, "shm-mpmc 1x1": 4}
	for _, r := range res {
		k := r.Transport + " " + PC{r.Producers, r.Consumers}.String()
		if r.Ratio != want[k] {
			t.Errorf("%s: ratio %v, want %v", k, r.Ratio, want[k])
		}
	}
}

func TestMessageQueueLimit(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("POSIX message queues: Linux only")
	}
	max, err := readProcInt("/proc/sys/fs/mqueue/msgsize_max")
	if err != nil {
		t.Skip(err)
	}
	r := &runner{cfg: cellConfig(10, 1)}
	res := runOne(t, r, lookupTransport("posix-mq"), ModeStream, max+8, PC{1, 1})
	if !strings.Contains(res.Unavailable, "msgsize_max") || res.Err != "" {
		t.Fatalf("mq with %d-byte messages: unavailable %q, error %q", max+8, res.Unavailable, res.Err)
	}
}

// A peer process that dies mid-measurement fails the cell promptly.
func TestPeerDeath(t *testing.T) {
	r := &runner{cfg: Config{Duration: time.Minute, Reps: 1}}
	r.cfg.fill()
	for _, name := range []string{"shm-spsc", "os-pipe", "posix-mq"} {
		t.Run(name, func(t *testing.T) {
			done := make(chan Result, 1)
			go func() { done <- runOne(t, r, lookupTransport(name), ModeStream, 64, PC{1, 1}) }()
			var pid int
			deadline := time.Now().Add(20 * time.Second)
			for pid == 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				if pids := peerPids(t); len(pids) == 1 {
					pid = pids[0]
				}
			}
			if pid == 0 {
				t.Fatal("no peer process found")
			}
			time.Sleep(300 * time.Millisecond)
			p, _ := os.FindProcess(pid)
			p.Kill()
			select {
			case res := <-done:
				if res.Unavailable != "" {
					t.Skip(res.Unavailable)
				}
				if !strings.Contains(res.Err, errPeerExited.Error()) {
					t.Fatalf("error %q, want %q", res.Err, errPeerExited)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cell still running 10s after its peer died")
			}
		})
	}
}

// peerPids lists this process's bench peers.
func peerPids(t *testing.T) []int {
	t.Helper()
	var pids []int
	for _, p := range children(os.Getpid()) {
		env, err := os.ReadFile("/proc/" + itoa(p) + "/environ")
		if err == nil && strings.Contains(string(env), roleEnv+"=") {
			pids = append(pids, p)
		}
	}
	return pids
}

// Pinned, the two sides run on two CPUs.
func TestPin(t *testing.T) {
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	r := &runner{cfg: cellConfig(200, 1)}
	if err := r.setupPin(); err != nil {
		t.Fatal(err)
	}
	defer r.unpin()
	for _, mode := range []string{ModeStream, ModeRTT} {
		if res := runOne(t, r, lookupTransport("shm-spsc"), mode, 64, PC{1, 1}); !res.OK() {
			t.Fatalf("%s: %s%s", res.label(), res.Err, res.Unavailable)
		}
	}
	if now, _ := allowedCPUs(); len(now) != len(cpus) {
		t.Fatalf("affinity not restored: %v, was %v", now, cpus)
	}
}
