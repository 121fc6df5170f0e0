package bench

// The kv workload (shmkit bench --kv): Dict Set+Get from -c client
// processes with -P requests in flight each, on the manager over its
// shared-memory and socket transports, and beside it redis-benchmark
// SET/GET on a redis-server the bench starts, and Python's
// Manager().dict(). Every client is its own process, as redis-benchmark's
// are its connections.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/shmkit/shmkit/manager"
)

// KV backends in table order. Redis is the reference of the "x redis"
// column, Python's manager of "x python".
const (
	KVManagerShm  = "manager-shm"
	KVManagerUnix = "manager-unix"
	KVRedis       = "redis"
	// KVRedisProcs is redis-benchmark as the manager's clients run: -c
	// processes of one connection each (redis-benchmark -c is one process
	// multiplexing its connections, which no separate-process client
	// matches on few CPUs).
	KVRedisProcs = "redis-procs"
	KVPython     = "py-manager"
)

// KVConfig configures RunKV. Zero fields take the defaults of DefaultKV.
type KVConfig struct {
	// Clients are the client process counts (redis-benchmark -c).
	Clients []int
	// Pipeline are the requests in flight per client (-P): one is a Set
	// then a Get, each waiting for its reply; P > 1 sends P/2 Sets and
	// P/2 Gets in one batch (one write) and waits for all P replies.
	Pipeline []int
	// Duration is the measured time of one cell.
	Duration time.Duration
	// Backends to run (default: the manager's two and redis); KVPython
	// is added by Python.
	Backends []string
	// Python adds Python's multiprocessing Manager().dict() (P = 1 only:
	// its proxies cannot pipeline) with the interpreter Python3.
	Python  bool
	Python3 string
	// RedisServer and RedisBenchmark name the tools (default: found on
	// PATH); a missing one makes the redis rows "unavailable".
	RedisServer, RedisBenchmark string
	// Progress, if set, receives a line per cell.
	Progress io.Writer
}

// DefaultKV returns the defaults: -c 1, 4, 50 x -P 1, 16, one second a
// cell, the manager on both transports, redis and redis-procs.
func DefaultKV() KVConfig {
	return KVConfig{
		Clients:  []int{1, 4, 50},
		Pipeline: []int{1, 16},
		Duration: time.Second,
		Backends: []string{KVManagerShm, KVManagerUnix, KVRedis, KVRedisProcs},
		Python3:  "python3",
	}
}

func (c KVConfig) withDefaults() KVConfig {
	d := DefaultKV()
	if len(c.Clients) == 0 {
		c.Clients = d.Clients
	}
	if len(c.Pipeline) == 0 {
		c.Pipeline = d.Pipeline
	}
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if len(c.Backends) == 0 {
		c.Backends = d.Backends
	}
	if c.Python && !slices.Contains(c.Backends, KVPython) {
		c.Backends = append(slices.Clip(c.Backends), KVPython)
	}
	if c.Python3 == "" {
		c.Python3 = d.Python3
	}
	if c.RedisServer == "" {
		c.RedisServer = "redis-server"
	}
	if c.RedisBenchmark == "" {
		c.RedisBenchmark = "redis-benchmark"
	}
	return c
}

// KVResult is one cell: a backend at Clients x Pipeline.
type KVResult struct {
	Backend  string `json:"backend"`
	Clients  int    `json:"clients"`
	Pipeline int    `json:"pipeline"`
	// Rate is SET and GET requests per second together: for redis,
	// 2 / (1/SET rps + 1/GET rps) of its two tests.
	Rate float64 `json:"requests_per_s"`
	// Unavailable says why the cell did not run (a missing tool).
	Unavailable string `json:"unavailable,omitempty"`
}

// RunKV runs every backend at every Clients x Pipeline cell. A backend
// that cannot run here is reported unavailable, not failed.
func RunKV(ctx context.Context, cfg KVConfig) ([]KVResult, error) {
	cfg = cfg.withDefaults()
	var out []KVResult
	for _, b := range cfg.Backends {
		var rs []KVResult
		var err error
		switch b {
		case KVManagerShm, KVManagerUnix:
			rs, err = runKVManager(ctx, cfg, b)
		case KVRedis, KVRedisProcs:
			rs, err = runKVRedis(ctx, cfg, b == KVRedisProcs)
		case KVPython:
			rs, err = runKVPython(ctx, cfg)
		default:
			return out, fmt.Errorf("kv: unknown backend %q (known: %s, %s, %s, %s, %s)", b, KVManagerShm, KVManagerUnix, KVRedis, KVRedisProcs, KVPython)
		}
		out = append(out, rs...)
		if err != nil {
			return out, fmt.Errorf("kv %s: %w", b, err)
		}
	}
	return out, nil
}

func (cfg KVConfig) progress(r KVResult) {
	if cfg.Progress == nil {
		return
	}
	if r.Unavailable != "" {
		fmt.Fprintf(cfg.Progress, "kv %-13s -c %-3d -P %-3d unavailable: %s\n", r.Backend, r.Clients, r.Pipeline, r.Unavailable)
		return
	}
	fmt.Fprintf(cfg.Progress, "kv %-13s -c %-3d -P %-3d %s req/s\n", r.Backend, r.Clients, r.Pipeline, fmtRate(r.Rate))
}

// unavailableKV marks every cell of a backend with why it cannot run.
func unavailableKV(cfg KVConfig, backend, why string, pipelines []int) []KVResult {
	var rs []KVResult
	for _, c := range cfg.Clients {
		for _, p := range pipelines {
			r := KVResult{Backend: backend, Clients: c, Pipeline: p, Unavailable: why}
			cfg.progress(r)
			rs = append(rs, r)
		}
	}
	return rs
}

// ---- the manager ----

const (
	kvRole    = "kv-client"
	kvSpecEnv = "SHMKIT_BENCH_KV"
	kvKeyFD   = 3
)

// kvSpec is what a kv client process is told (the key comes on fd 3).
type kvSpec struct {
	Addr     string        `json:"addr"`
	NoShm    bool          `json:"no_shm"`
	Pipeline int           `json:"pipeline"`
	Duration time.Duration `json:"duration"`
	ID       int           `json:"id"`
}

// kvReport is a client's last line: requests completed in Elapsed.
type kvReport struct {
	Requests int64         `json:"requests"`
	Elapsed  time.Duration `json:"elapsed"`
	Err      string        `json:"error,omitempty"`
}

func runKVManager(ctx context.Context, cfg KVConfig, backend string) ([]KVResult, error) {
	srv, err := manager.Start(ctx, manager.Options{})
	if err != nil {
		return nil, err
	}
	defer srv.Shutdown(context.Background())
	var rs []KVResult
	for _, c := range cfg.Clients {
		for _, p := range cfg.Pipeline {
			spec := kvSpec{Addr: srv.Addr, NoShm: backend == KVManagerUnix, Pipeline: p, Duration: cfg.Duration}
			rate, err := runKVClients(ctx, c, spec, srv.Key)
			if err != nil {
				return rs, fmt.Errorf("-c %d -P %d: %w", c, p, err)
			}
			r := KVResult{Backend: backend, Clients: c, Pipeline: p, Rate: rate}
			cfg.progress(r)
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// kvClient is one started client process.
type kvClient struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// runKVClients starts n client processes, lets them go at once and
// returns the sum of their rates.
func runKVClients(ctx context.Context, n int, spec kvSpec, key []byte) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	var kids []*kvClient
	defer func() {
		for _, k := range kids {
			k.in.Close()
			k.cmd.Process.Kill()
			k.cmd.Wait()
		}
	}()
	for i := 0; i < n; i++ {
		spec.ID = i
		js, _ := json.Marshal(spec)
		kr, kw, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), roleEnv+"="+kvRole, kvSpecEnv+"="+string(js))
		cmd.ExtraFiles = []*os.File{kr}
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			kr.Close()
			kw.Close()
			return 0, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			kr.Close()
			kw.Close()
			return 0, err
		}
		err = cmd.Start()
		kr.Close()
		if err == nil {
			_, err = kw.Write(key)
		}
		kw.Close()
		if err != nil {
			return 0, err
		}
		kids = append(kids, &kvClient{cmd: cmd, in: in, out: bufio.NewReader(out)})
	}
	for _, k := range kids {
		if line, err := k.out.ReadString('\n'); err != nil || line != "ready\n" {
			return 0, fmt.Errorf("client did not get ready: %q, %v", line, err)
		}
	}
	for _, k := range kids {
		if _, err := io.WriteString(k.in, "go\n"); err != nil {
			return 0, err
		}
	}
	var total float64
	for _, k := range kids {
		line, err := k.out.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("client report: %w", err)
		}
		var r kvReport
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return 0, fmt.Errorf("client report %q: %w", line, err)
		}
		if r.Err != "" {
			return 0, errors.New(r.Err)
		}
		if r.Elapsed > 0 {
			total += float64(r.Requests) / r.Elapsed.Seconds()
		}
	}
	return total, nil
}

// kvClientMain is a client process: dial, say ready, wait for go, run
// Set+Get for the duration, report.
func kvClientMain() error {
	var spec kvSpec
	if err := json.Unmarshal([]byte(os.Getenv(kvSpecEnv)), &spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	kf := os.NewFile(kvKeyFD, "key")
	key, err := io.ReadAll(io.LimitReader(kf, 1<<10))
	kf.Close()
	if err != nil {
		return err
	}
	ctx := context.Background()
	c, err := manager.Dial(ctx, spec.Addr, manager.Options{Key: key, NoSharedMemory: spec.NoShm})
	if err != nil {
		return err
	}
	defer c.Close()
	d := c.Dict("bench")
	keys := make([]string, max(spec.Pipeline/2, 1))
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(spec.ID) + ":" + strconv.Itoa(i)
	}
	const val = "xxx" // redis-benchmark's default 3-byte value
	fmt.Println("ready")
	if line, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("no go: %q, %v", line, err)
	}
	report := func(n int64, el time.Duration, err error) error {
		r := kvReport{Requests: n, Elapsed: el}
		if err != nil {
			r.Err = err.Error()
		}
		js, _ := json.Marshal(r)
		fmt.Println(string(js))
		return nil
	}
	start := time.Now()
	end := start.Add(spec.Duration)
	var n int64
	for time.Now().Before(end) {
		if spec.Pipeline <= 1 {
			if err := d.Set(ctx, keys[0], val); err != nil {
				return report(n, time.Since(start), err)
			}
			var got string
			if err := d.Get(ctx, keys[0], &got); err != nil || got != val {
				return report(n, time.Since(start), fmt.Errorf("kv client: Get = %q, %v", got, err))
			}
			n += 2
			continue
		}
		b := c.Batch()
		gets := make([]*manager.Pending, len(keys))
		for _, k := range keys {
			b.Dict("bench").Set(k, val)
		}
		for i, k := range keys {
			gets[i] = b.Dict("bench").Get(k)
		}
		if err := b.Send(ctx); err != nil {
			return report(n, time.Since(start), err)
		}
		for _, g := range gets {
			var got string
			if err := g.Decode(&got); err != nil || got != val {
				return report(n, time.Since(start), fmt.Errorf("batched Get = %q, %v", got, err))
			}
		}
		n += int64(2 * len(keys))
	}
	return report(n, time.Since(start), nil)
}

// WriteKVTable writes the kv results: one row per backend and cell, with
// the rate over redis's and over Python's at the same -c (Python at -P 1:
// it cannot pipeline).
func WriteKVTable(w io.Writer, rs []KVResult) {
	find := func(backend string, c, p int) float64 {
		for _, r := range rs {
			if r.Backend == backend && r.Clients == c && r.Pipeline == p && r.Unavailable == "" {
				return r.Rate
			}
		}
		return 0
	}
	ratio := func(a, b float64) string {
		if a == 0 || b == 0 {
			return "-"
		}
		return fmtRatio(a / b)
	}
	fmt.Fprintf(w, "%-13s %4s %4s %10s %8s %8s %9s\n", "backend", "-c", "-P", "req/s", "x redis", "x r-procs", "x python")
	for _, r := range rs {
		if r.Unavailable != "" {
			fmt.Fprintf(w, "%-13s %4d %4d %10s  (%s)\n", r.Backend, r.Clients, r.Pipeline, "unavailable", r.Unavailable)
			continue
		}
		fmt.Fprintf(w, "%-13s %4d %4d %10s %8s %8s %9s\n", r.Backend, r.Clients, r.Pipeline, fmtRate(r.Rate),
			ratio(r.Rate, find(KVRedis, r.Clients, r.Pipeline)), ratio(r.Rate, find(KVRedisProcs, r.Clients, r.Pipeline)),
			ratio(r.Rate, find(KVPython, r.Clients, 1)))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "req/s: SET and GET requests per second together, all clients (each a process); -P: requests in flight per client")
	fmt.Fprintln(w, "(manager: P/2 Sets and P/2 Gets in one batch; redis-benchmark: -P pipelined). redis: one redis-benchmark")
	fmt.Fprintln(w, "process with -c connections; redis-procs (x r-procs): -c redis-benchmark processes of one connection each, the")
	fmt.Fprintln(w, "manager clients' shape. x python: over Python's Manager().dict() at the same -c and -P 1 (it cannot pipeline).")
}
