package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shmkit/shmkit/bench"
)

const benchUsage = `usage: shmkit bench [flags]

Runs one workload over many transports, each side in its own process, and
prints a table (stdout), progress (stderr), an SVG chart and optionally JSON.
Defaults take under a minute on two cores. Ratios ("x pipe") compare each
result with os-pipe in the same run, which always runs, at the same
producers x consumers where os-pipe ran them (else at 1x1).

With -kv it runs the key-value workload instead: manager Dict Set+Get from
-kv-clients client processes x -kv-pipeline requests in flight, over the
shared-memory Pipe and the unix socket, beside redis-benchmark SET/GET on a
redis-server it starts and stops (rows say "unavailable" when redis-server
or redis-benchmark is not installed) and, with -python, Python's
multiprocessing Manager().dict().

flags:
`

// benchFlags are the parsed flags of `shmkit bench`.
type benchFlags struct {
	cfg      bench.Config
	jsonPath string
	svgPath  string
	list     bool
	kv       bool
	kvCfg    bench.KVConfig
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, error) {
	def := bench.Default()
	fs := flag.NewFlagSet("shmkit bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var (
		transports = fs.String("transports", "all", "comma-separated transports to run (see -list); all: every Go transport")
		sizes      = fs.String("sizes", "64,4K,64K,1M", "message sizes of the stream workload (bytes; K and M are KiB and MiB)")
		rttSizes   = fs.String("rtt-sizes", "64", "message sizes of the round-trip workload")
		modes      = fs.String("modes", "stream,rtt", "workloads: stream (one way), rtt (ping-pong)")
		counts     = fs.String("counts", "1x1,4x4", "producers x consumers of stream cells on transports that take several (shm-mpmc, go-chan; os-pipe up to 4092-byte messages)")
		duration   = fs.Duration("duration", def.Duration, "measured time of one repetition")
		warmup     = fs.Duration("warmup", def.Warmup, "unmeasured warm-up before the repetitions of a cell")
		reps       = fs.Int("reps", def.Reps, "repetitions per cell (the median is reported)")
		messages   = fs.Int("messages", 0, "if > 0, messages per producer per repetition instead of -duration")
		pin        = fs.Bool("pin", false, "run the two sides on two different CPUs (best on an otherwise idle machine)")
		python     = fs.Bool("python", false, "add Python's multiprocessing.Queue and Pipe as references (needs python3)")
		python3    = fs.String("python3", "python3", "the Python interpreter for -python")
		quiet      = fs.Bool("q", false, "no progress on stderr")
		kv         = fs.Bool("kv", false, "run the kv workload instead: manager Dict Set+Get against redis-benchmark (when redis-server is installed) and, with -python, Python's Manager().dict()")
		kvClients  = fs.String("kv-clients", "1,4,50", "-kv: client processes per cell (redis-benchmark -c)")
		kvPipeline = fs.String("kv-pipeline", "1,16", "-kv: requests in flight per client (redis-benchmark -P)")
		kvDuration = fs.Duration("kv-duration", bench.DefaultKV().Duration, "-kv: measured time of one cell")
		kvBackends = fs.String("kv-backends", "manager-shm,manager-unix,redis,redis-procs", "-kv: backends to run (py-manager is added by -python)")
	)
	f := &benchFlags{}
	fs.StringVar(&f.jsonPath, "json", "", "write the results as JSON to `FILE`")
	fs.StringVar(&f.svgPath, "svg", "bench.svg", "write the charts as SVG to `FILE` (empty: none)")
	fs.BoolVar(&f.list, "list", false, "list the transports and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	cfg := bench.Config{
		Duration: *duration, Warmup: *warmup, Reps: *reps, Messages: *messages,
		Pin: *pin, Python: *python, Python3: *python3,
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *transports != "all" && *transports != "" {
		cfg.Transports = splitList(*transports)
	}
	cfg.Modes = splitList(*modes)
	var err error
	if *kv {
		f.kv = true
		f.kvCfg = bench.KVConfig{Duration: *kvDuration, Backends: splitList(*kvBackends), Python: *python, Python3: *python3, Progress: cfg.Progress}
		if f.kvCfg.Clients, err = parseInts(*kvClients); err != nil {
			return nil, fmt.Errorf("-kv-clients: %w", err)
		}
		if f.kvCfg.Pipeline, err = parseInts(*kvPipeline); err != nil {
			return nil, fmt.Errorf("-kv-pipeline: %w", err)
		}
		if *kvDuration <= 0 {
			return nil, errors.New("-kv-duration must be positive")
		}
	}
	if cfg.StreamSizes, err = parseSizes(*sizes); err != nil {
		return nil, err
	}
	if cfg.RTTSizes, err = parseSizes(*rttSizes); err != nil {
		return nil, err
	}
	for _, s := range splitList(*counts) {
		pc, err := bench.ParsePC(s)
		if err != nil {
			return nil, err
		}
		cfg.Counts = append(cfg.Counts, pc)
	}
	switch {
	case cfg.Reps < 1:
		return nil, errors.New("-reps must be at least 1")
	case cfg.Duration <= 0 && cfg.Messages <= 0:
		return nil, errors.New("-duration must be positive (or set -messages)")
	case cfg.Warmup < 0:
		return nil, errors.New("-warmup must not be negative")
	}
	f.cfg = cfg
	return f, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive count", p)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := bench.ParseSize(p)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseBenchFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
		return exitUsage
	}
	if f.list {
		for _, t := range bench.Transports() {
			fmt.Fprintf(stdout, "%-16s %s\n", t[0], t[1])
		}
		return exitOK
	}
	start := time.Now()
	if f.kv {
		return runKV(ctx, f, start, stdout, stderr)
	}
	fmt.Fprintln(stdout, describeRun(&f.cfg, start))
	results, err := bench.Run(ctx, f.cfg)
	if ctx.Err() != nil {
		if len(results) > 0 {
			fmt.Fprintln(stdout)
			bench.WriteTable(stdout, results)
		}
		fmt.Fprintf(stderr, "shmkit bench: interrupted after %.1fs; no files written\n", time.Since(start).Seconds())
		return exitInterrupted
	}
	code := exitOK
	if err != nil {
		if !errors.Is(err, bench.ErrFailed) {
			fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
		code = exitFailed
	}
	fmt.Fprintln(stdout)
	if err := bench.WriteTable(stdout, results); err != nil {
		fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "\nwall time %.1fs\n", time.Since(start).Seconds())
	if f.jsonPath != "" {
		if err := writeFile(f.jsonPath, func(w io.Writer) error { return bench.WriteJSON(w, results) }); err != nil {
			fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.jsonPath)
	}
	if f.svgPath != "" {
		if err := writeFile(f.svgPath, func(w io.Writer) error { return bench.WriteSVG(w, results) }); err != nil {
			fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.svgPath)
	}
	return code
}

// runKV is `shmkit bench -kv`: the table on stdout, JSON if asked.
func runKV(ctx context.Context, f *benchFlags, start time.Time, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, strings.SplitN(describeRun(&f.cfg, start), "\n", 2)[0])
	fmt.Fprintf(stdout, "kv: %v per cell\n\n", f.kvCfg.Duration)
	results, err := bench.RunKV(ctx, f.kvCfg)
	bench.WriteKVTable(stdout, results)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "shmkit bench: interrupted after %.1fs; no files written\n", time.Since(start).Seconds())
			return exitInterrupted
		}
		fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "\nwall time %.1fs\n", time.Since(start).Seconds())
	if f.jsonPath != "" {
		if err := writeFile(f.jsonPath, func(w io.Writer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(results)
		}); err != nil {
			fmt.Fprintf(stderr, "shmkit bench: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.jsonPath)
	}
	return exitOK
}

// writeFile writes through a buffer, so a failed render leaves no
// half-written file.
func writeFile(path string, write func(io.Writer) error) error {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// describeRun is the header above the table: when, where, and how.
func describeRun(c *bench.Config, t time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shmkit bench  %s  %s %s/%s  %d CPUs", t.Format("2006-01-02 15:04 MST"), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if m := cpuModel(); m != "" {
		fmt.Fprintf(&b, " (%s)", m)
	}
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		fmt.Fprintf(&b, "  kernel %s", strings.TrimSpace(string(k)))
	}
	// Other load skews every number; say how much there was.
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(l)); len(f) >= 3 {
			fmt.Fprintf(&b, "  load %s %s %s", f[0], f[1], f[2])
		}
	}
	per := fmt.Sprintf("%v", c.Duration)
	if c.Messages > 0 {
		per = fmt.Sprintf("%d messages", c.Messages)
	}
	fmt.Fprintf(&b, "\n%s per repetition x %d after %v warm-up; pin %v", per, c.Reps, c.Warmup, c.Pin)
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}
