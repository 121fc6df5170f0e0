package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmkit/shmkit/bench"
	"github.com/shmkit/shmkit/shm"
)

// asCommandEnv makes the test binary run as the shmkit command (its
// arguments after the program name), so tests can signal a real process.
const asCommandEnv = "SHMKIT_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	bench.MaybeChild()
	if os.Getenv(asCommandEnv) == "1" {
		os.Exit(runMain(os.Args[1:]))
	}
	if name := os.Getenv(holdEnv); name != "" {
		holdSegment(name) // a participant for the gc tests; never returns
	}
	// Race-built peers would sleep a second at exit otherwise.
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestDispatch(t *testing.T) {
	if code, _, e := runCmd(t); code != exitUsage || !strings.Contains(e, "usage: shmkit") {
		t.Fatalf("no command: %d %q", code, e)
	}
	if code, o, _ := runCmd(t, "help"); code != exitOK || !strings.Contains(o, "bench") || !strings.Contains(o, "gc") {
		t.Fatalf("help: %d %q", code, o)
	}
	if code, _, e := runCmd(t, "frobnicate"); code != exitUsage || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %q", code, e)
	}
	for _, name := range []string{"ls", "stat", "gc", "manager"} {
		if _, ok := commands()[name]; !ok {
			t.Fatalf("no %s command", name)
		}
	}
	if code, o, _ := runCmd(t, "bench", "-list"); code != exitOK || !strings.Contains(o, "shm-spsc") || !strings.Contains(o, "py-mp-queue") {
		t.Fatalf("bench -list: %d %q", code, o)
	}
	if code, _, e := runCmd(t, "bench", "-h"); code != exitOK || !strings.Contains(e, "-duration") {
		t.Fatalf("bench -h: %d %q", code, e)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-sizes", "4"},
		{"-sizes", "lots"},
		{"-counts", "4"},
		{"-reps", "0"},
		{"-duration", "0s"},
		{"-transports", "smoke-signals"},
		{"-modes", "sideways"},
		{"extra"},
	} {
		if code, _, e := runCmd(t, append([]string{"bench", "-q"}, args...)...); code != exitUsage {
			t.Errorf("bench %v: exit %d, want %d (%s)", args, code, exitUsage, e)
		}
	}
}

// The JSON has the documented keys with sane values; the SVG is written.
func TestBenchOutputs(t *testing.T) {
	dir := t.TempDir()
	js, svg := filepath.Join(dir, "b.json"), filepath.Join(dir, "b.svg")
	code, o, e := runCmd(t, "bench", "-transports", "shm-spsc,shm-mpmc,go-chan", "-sizes", "64,4K", "-rtt-sizes", "64",
		"-counts", "1x1,2x2", "-messages", "300", "-reps", "2", "-json", js, "-svg", svg)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, o, e)
	}
	for _, want := range []string{"transport", "shm-spsc", "shm-mpmc", "2x2", "os-pipe", "wrote " + svg} {
		if !strings.Contains(o, want) {
			t.Fatalf("output without %q:\n%s", want, o)
		}
	}
	if !strings.Contains(e, "stream") || !strings.Contains(e, "rtt") {
		t.Fatalf("no progress on stderr: %q", e)
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var results []map[string]any
	if err := json.Unmarshal(data, &results); err != nil {
		t.Fatal(err)
	}
	required := []string{"transport", "mode", "size", "producers", "consumers", "msgs_per_sec", "bytes_per_sec",
		"p50_ns", "p99_ns", "p999_ns", "cpu_ns_per_msg", "ratio_vs_pipe"}
	// 2 sizes x (spsc, mpmc 1x1, mpmc 2x2, pipe 1x1, chan 1x1, chan 2x2)
	// + pipe 2x2 at 64 B (4 KiB frames exceed PIPE_BUF) + rtt x 4
	if len(results) != 17 {
		t.Fatalf("%d results, want 17:\n%s", len(results), data)
	}
	for _, r := range results {
		for _, k := range required {
			if _, ok := r[k]; !ok {
				t.Fatalf("result without %q: %v", k, r)
			}
		}
		if r["msgs_per_sec"].(float64) <= 0 || r["cpu_ns_per_msg"].(float64) <= 0 || r["ratio_vs_pipe"].(float64) <= 0 {
			t.Fatalf("result %v", r)
		}
		if r["mode"] == "rtt" && !(r["p50_ns"].(float64) > 0 && r["p99_ns"].(float64) >= r["p50_ns"].(float64) && r["p999_ns"].(float64) >= r["p99_ns"].(float64)) {
			t.Fatalf("result %v", r)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil || len(b) == 0 || !(bytes.HasPrefix(b, []byte("<?xml")) || bytes.HasPrefix(b, []byte("<svg"))) {
		t.Fatalf("SVG: %v, %.100q", err, b)
	}
}

// Interrupted, `shmkit bench` exits promptly and leaves no process and no
// segment behind: by Ctrl-C (SIGINT to the process group, peers included),
// SIGINT or SIGTERM to the runner alone, or SIGKILL to the runner (the
// kernel then kills the peers).
func TestBenchInterrupt(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, py := exec.LookPath("python3")
	cases := []struct {
		name   string
		sig    syscall.Signal
		group  bool
		python bool
	}{
		{"ctrl-c", syscall.SIGINT, true, false},
		{"sigint", syscall.SIGINT, false, false},
		{"sigterm", syscall.SIGTERM, false, false},
		{"sigkill", syscall.SIGKILL, false, false},
		{"ctrl-c-python", syscall.SIGINT, true, true},
		{"sigkill-python", syscall.SIGKILL, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.python && py != nil {
				t.Skip("no python3")
			}
			shmDir := t.TempDir()
			before := devShm(t)
			token := "shmkit-test-" + strconv.Itoa(os.Getpid()) + "-" + c.name
			args := []string{"bench", "-duration", "1m", "-warmup", "0s", "-svg", filepath.Join(shmDir, "no.svg")}
			if c.python {
				args = append(args, "-transports", "py-mp-queue", "-modes", "stream")
			}
			cmd := exec.Command(exe, args...)
			cmd.Env = append(os.Environ(), asCommandEnv+"=1", "SHMKIT_DIR="+shmDir, "SHMKIT_TEST_TOKEN="+token)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				for _, p := range tokenProcs(token) {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}()
			// Wait until the measurement runs: a peer (or Python) exists.
			want := 2 // the command and its peer
			if c.python {
				want = 3 // and python's multiprocessing child
			}
			started := time.Now()
			deadline := started.Add(30 * time.Second)
			for len(tokenProcs(token)) < want {
				if time.Now().After(deadline) {
					t.Fatalf("only %v started; stderr:\n%s", tokenProcs(token), stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(max(200*time.Millisecond, time.Second-time.Since(started)))
			pid := cmd.Process.Pid
			if c.group {
				pid = -pid
			}
			start := time.Now()
			if err := syscall.Kill(pid, c.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				t.Logf("exit after %v: %v", time.Since(start), err)
				if c.sig != syscall.SIGKILL {
					if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
						t.Fatalf("exit %v, want status %d; stderr:\n%s", err, exitInterrupted, stderr.String())
					}
					if !strings.Contains(stderr.String(), "interrupted") {
						t.Fatalf("stderr:\n%s", stderr.String())
					}
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("still running 5s after %v; stderr:\n%s", c.sig, stderr.String())
			}
			// The peers are gone, by the runner's hand or the kernel's.
			deadline = time.Now().Add(3 * time.Second)
			for len(tokenProcs(token)) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("processes left behind: %v", tokenProcs(token))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if ents, _ := os.ReadDir(shmDir); len(ents) > 0 {
				t.Fatalf("files left in SHMKIT_DIR: %v", ents)
			}
			if after := devShm(t); len(after) > len(before) {
				t.Fatalf("new files in /dev/shm: %v, before %v", after, before)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tokenProcs lists the live processes whose environment holds token: the
// command and everything it started (environments are inherited).
func tokenProcs(token string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, []byte("SHMKIT_TEST_TOKEN="+token+"\x00")) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue // a zombie is dead; its reaping is its new parent's business
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// devShm lists the named segments in /dev/shm (other tests use their own
// directories).
func devShm(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/dev/shm")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), shm.FilePrefix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// `shmkit bench -kv` prints the kv table and writes its JSON; bad kv
// flags are usage errors.
func TestBenchKV(t *testing.T) {
	js := filepath.Join(t.TempDir(), "kv.json")
	code, o, e := runCmd(t, "bench", "-kv", "-kv-clients", "1,2", "-kv-pipeline", "1,4", "-kv-duration", "50ms",
		"-kv-backends", "manager-shm,manager-unix", "-json", js)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, o, e)
	}
	for _, want := range []string{"backend", "manager-shm", "manager-unix", "req/s", "wrote " + js} {
		if !strings.Contains(o, want) {
			t.Fatalf("output without %q:\n%s", want, o)
		}
	}
	data, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rs []map[string]any
	if err := json.Unmarshal(data, &rs); err != nil || len(rs) != 8 {
		t.Fatalf("%d results, %v:\n%s", len(rs), err, data)
	}
	for _, r := range rs {
		if r["requests_per_s"].(float64) <= 0 {
			t.Fatalf("result %v", r)
		}
	}
	for _, args := range [][]string{{"-kv-clients", "0"}, {"-kv-pipeline", "x"}, {"-kv-duration", "0s"}, {"-kv-clients", ""}} {
		if code, _, e := runCmd(t, append([]string{"bench", "-q", "-kv"}, args...)...); code != exitUsage {
			t.Errorf("bench -kv %v: exit %d, want %d (%s)", args, code, exitUsage, e)
		}
	}
}
