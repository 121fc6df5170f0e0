package bench

// The kv references: redis-benchmark against a redis-server the bench
// starts on a unix socket in a fresh directory (and stops), and Python's
// multiprocessing Manager().dict(). Neither is a dependency: a missing
// tool makes its rows "unavailable".

import (
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func runKVRedis(ctx context.Context, cfg KVConfig, procs bool) ([]KVResult, error) {
	backend := KVRedis
	if procs {
		backend = KVRedisProcs
	}
	server, err := exec.LookPath(cfg.RedisServer)
	if err != nil {
		return unavailableKV(cfg, backend, cfg.RedisServer+" not found", cfg.Pipeline), nil
	}
	client, err := exec.LookPath(cfg.RedisBenchmark)
	if err != nil {
		return unavailableKV(cfg, backend, cfg.RedisBenchmark+" not found", cfg.Pipeline), nil
	}
	dir, err := os.MkdirTemp("", "shmkit-bench-redis-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "redis.sock")
	// No TCP port, no persistence: an in-memory server on a socket only
	// this user can reach.
	srv := exec.CommandContext(ctx, server, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--maxclients", "1000")
	srv.Stdout, srv.Stderr = nil, nil
	if err := srv.Start(); err != nil {
		return unavailableKV(cfg, backend, "redis-server did not start: "+err.Error(), cfg.Pipeline), nil
	}
	defer func() {
		srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	for t0 := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Since(t0) > 10*time.Second {
			return unavailableKV(cfg, backend, "redis-server did not open its socket", cfg.Pipeline), nil
		}
	}
	var rs []KVResult
	for _, c := range cfg.Clients {
		for _, p := range cfg.Pipeline {
			var r KVResult
			if procs {
				r, err = redisProcsCell(ctx, client, sock, c, p, cfg.Duration)
			} else {
				r, err = redisCell(ctx, client, sock, c, p, cfg.Duration)
			}
			if err != nil {
				return rs, fmt.Errorf("-c %d -P %d: %w", c, p, err)
			}
			cfg.progress(r)
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// redisCell runs redis-benchmark -t set,get at c x p, with a request
// count sized from a first guess of its rate so each test takes about d.
func redisCell(ctx context.Context, client, sock string, c, p int, d time.Duration) (KVResult, error) {
	guess := 10000.0 * float64(min(c, 8)) * float64(p) // req/s, low on purpose
	n := max(int(guess*d.Seconds()), 1000)
	out, err := exec.CommandContext(ctx, client, "-s", sock, "-c", strconv.Itoa(c), "-P", strconv.Itoa(p),
		"-t", "set,get", "-n", strconv.Itoa(n), "--csv").Output()
	if err != nil {
		return KVResult{}, fmt.Errorf("redis-benchmark: %w", err)
	}
	set, get, err := parseRedisCSV(string(out))
	if err != nil {
		return KVResult{}, err
	}
	return KVResult{Backend: KVRedis, Clients: c, Pipeline: p, Rate: 2 / (1/set + 1/get)}, nil
}

// redisProcsCell runs c redis-benchmark processes of one connection each
// at once and sums their rates.
func redisProcsCell(ctx context.Context, client, sock string, c, p int, d time.Duration) (KVResult, error) {
	n := max(int(10000*float64(p)*d.Seconds()/float64(max(1, c/2))), 200)
	type out struct {
		rate float64
		err  error
	}
	outs := make(chan out, c)
	for i := 0; i < c; i++ {
		go func() {
			b, err := exec.CommandContext(ctx, client, "-s", sock, "-c", "1", "-P", strconv.Itoa(p),
				"-t", "set,get", "-n", strconv.Itoa(n), "--csv").Output()
			if err != nil {
				outs <- out{err: fmt.Errorf("redis-benchmark: %w", err)}
				return
			}
			set, get, err := parseRedisCSV(string(b))
			outs <- out{rate: 2 / (1/set + 1/get), err: err}
		}()
	}
	r := KVResult{Backend: KVRedisProcs, Clients: c, Pipeline: p}
	var errs []error
	for i := 0; i < c; i++ {
		o := <-outs
		r.Rate += o.rate
		errs = append(errs, o.err)
	}
	return r, errors.Join(errs...)
}

// parseRedisCSV reads the SET and GET requests per second from
// redis-benchmark --csv (a header line, then "TEST","rps",...).
func parseRedisCSV(s string) (set, get float64, err error) {
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		return 0, 0, fmt.Errorf("redis-benchmark output: %w", err)
	}
	for _, r := range recs {
		if len(r) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			continue // the header
		}
		switch strings.ToUpper(r[0]) {
		case "SET":
			set = v
		case "GET":
			get = v
		}
	}
	if set <= 0 || get <= 0 {
		return 0, 0, fmt.Errorf("redis-benchmark output without SET and GET rates: %q", s)
	}
	return set, get, nil
}

// kvPyScript runs Python's manager dict; see its header.
//
//go:embed kv.py
var kvPyScript string

func runKVPython(ctx context.Context, cfg KVConfig) ([]KVResult, error) {
	path, err := exec.LookPath(cfg.Python3)
	if err != nil {
		return unavailableKV(cfg, KVPython, cfg.Python3+" not found", []int{1}), nil
	}
	var rs []KVResult
	for _, c := range cfg.Clients {
		out, err := exec.CommandContext(ctx, path, "-c", kvPyScript, strconv.Itoa(c), strconv.FormatFloat(cfg.Duration.Seconds(), 'f', -1, 64)).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%w: %s", err, firstLine(string(ee.Stderr)))
			}
			return rs, fmt.Errorf("-c %d: %w", c, err)
		}
		var res struct {
			Requests int64   `json:"requests"`
			Rate     float64 `json:"rate"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return rs, fmt.Errorf("-c %d: output %q: %w", c, out, err)
		}
		r := KVResult{Backend: KVPython, Clients: c, Pipeline: 1, Rate: res.Rate}
		cfg.progress(r)
		rs = append(rs, r)
	}
	return rs, nil
}
