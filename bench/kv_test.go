package bench

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKV: every backend runs (or says unavailable) at two -c and two -P,
// each client a process; a rate is positive; the table names them all.
func TestKV(t *testing.T) {
	cfg := KVConfig{Clients: []int{1, 3}, Pipeline: []int{1, 4}, Duration: 100 * time.Millisecond, Python: true}
	rs, err := RunKV(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{KVManagerShm: 4, KVManagerUnix: 4, KVRedis: 4, KVRedisProcs: 4, KVPython: 2}
	for _, r := range rs {
		want[r.Backend]--
		switch {
		case r.Unavailable != "":
			t.Logf("%s -c %d -P %d unavailable: %s", r.Backend, r.Clients, r.Pipeline, r.Unavailable)
			if r.Backend == KVManagerShm || r.Backend == KVManagerUnix {
				t.Errorf("%s unavailable", r.Backend)
			}
		case r.Rate <= 0:
			t.Errorf("%s -c %d -P %d: rate %v", r.Backend, r.Clients, r.Pipeline, r.Rate)
		}
	}
	for b, n := range want {
		if n != 0 {
			t.Errorf("%s: %d cells missing (or extra)", b, n)
		}
	}
	var out bytes.Buffer
	WriteKVTable(&out, rs)
	for b := range want {
		if !strings.Contains(out.String(), b) {
			t.Errorf("table lacks %s:\n%s", b, out.String())
		}
	}
}

// TestKVToolsMissing: without redis-server, redis-benchmark or python3
// the rows say unavailable, and the run goes on.
func TestKVToolsMissing(t *testing.T) {
	cfg := KVConfig{Clients: []int{1}, Pipeline: []int{1}, Duration: 50 * time.Millisecond,
		Backends: []string{KVRedis}, Python: true, Python3: "/nonexistent/python3", RedisServer: "/nonexistent/redis-server"}
	rs, err := RunKV(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || !strings.Contains(rs[0].Unavailable, "not found") || !strings.Contains(rs[1].Unavailable, "not found") {
		t.Fatalf("results %+v, want two unavailable rows", rs)
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		cfg.RedisServer, cfg.RedisBenchmark = "", "/nonexistent/redis-benchmark"
		cfg.Python = false
		if rs, err := RunKV(context.Background(), cfg); err != nil || len(rs) != 1 || rs[0].Unavailable == "" {
			t.Fatalf("without redis-benchmark: %+v, %v", rs, err)
		}
	}
	if _, err := RunKV(context.Background(), KVConfig{Backends: []string{"memcached"}}); err == nil {
		t.Fatal("an unknown backend ran")
	}
}

// TestParseRedisCSV reads redis-benchmark 7's --csv output.
func TestParseRedisCSV(t *testing.T) {
	const out = `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","27027.03","0.033","0.000","0.015","0.103","0.143","0.295"
"GET","10810.81","0.087","0.000","0.087","0.127","0.191","1.983"
`
	set, get, err := parseRedisCSV(out)
	if err != nil || set != 27027.03 || get != 10810.81 {
		t.Fatalf("parse = %v, %v, %v", set, get, err)
	}
	if _, _, err := parseRedisCSV(`"test","rps"` + "\n" + `"SET","1"` + "\n"); err == nil {
		t.Fatal("output without GET accepted")
	}
}

// TestKVDefaults: the documented defaults.
func TestKVDefaults(t *testing.T) {
	d := KVConfig{}.withDefaults()
	if !slices.Equal(d.Clients, []int{1, 4, 50}) || !slices.Equal(d.Pipeline, []int{1, 16}) || d.Duration != time.Second ||
		strings.Join(d.Backends, ",") != "manager-shm,manager-unix,redis,redis-procs" || d.Python3 != "python3" {
		t.Fatalf("defaults %+v", d)
	}
}
