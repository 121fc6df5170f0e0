package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// requiredKeys are the JSON keys every result carries (the interface of
// --json); extraKeys the ones it may carry besides.
var (
	requiredKeys = []string{"transport", "mode", "size", "producers", "consumers", "msgs_per_sec", "bytes_per_sec",
		"p50_ns", "p99_ns", "p999_ns", "cpu_ns_per_msg", "ratio_vs_pipe"}
	extraKeys = []string{"p90_ns", "max_ns", "rep_msgs_per_sec", "messages", "reference"}
)

// checkJSON verifies the JSON output of a run: the keys, and values that
// make sense.
func checkJSON(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("JSON: %v\n%s", err, data)
	}
	if len(out) == 0 {
		t.Fatal("JSON: no results")
	}
	for _, o := range out {
		for _, k := range requiredKeys {
			if _, ok := o[k]; !ok {
				t.Fatalf("JSON result without %q: %v", k, o)
			}
		}
		for k := range o {
			if !slices.Contains(requiredKeys, k) && !slices.Contains(extraKeys, k) {
				t.Fatalf("JSON result with unexpected key %q", k)
			}
		}
		num := func(k string) float64 {
			v, ok := o[k].(float64)
			if !ok {
				t.Fatalf("JSON %s = %v (%T), want a number: %v", k, o[k], o[k], o)
			}
			return v
		}
		if o["transport"] == "" || (o["mode"] != ModeStream && o["mode"] != ModeRTT) {
			t.Fatalf("JSON result %v", o)
		}
		size, msgs, bytes := num("size"), num("msgs_per_sec"), num("bytes_per_sec")
		if size < MinSize || num("producers") < 1 || num("consumers") < 1 || msgs <= 0 || num("cpu_ns_per_msg") <= 0 {
			t.Fatalf("JSON result %v", o)
		}
		if d := bytes - msgs*size; d > 1e-6*bytes || d < -1e-6*bytes {
			t.Fatalf("bytes_per_sec %v is not msgs_per_sec x size: %v", bytes, o)
		}
		if o["mode"] == ModeRTT {
			if p50, p99, p999 := num("p50_ns"), num("p99_ns"), num("p999_ns"); !(p50 > 0 && p50 <= p99 && p99 <= p999) {
				t.Fatalf("JSON percentiles %v", o)
			}
		} else if o["p50_ns"] != nil || o["p99_ns"] != nil || o["p999_ns"] != nil {
			t.Fatalf("JSON stream result with latencies: %v", o)
		}
		if o["transport"] == Baseline && num("ratio_vs_pipe") != 1 {
			t.Fatalf("the baseline's ratio is %v", o["ratio_vs_pipe"])
		}
		if o["ratio_vs_pipe"] != nil && num("ratio_vs_pipe") <= 0 {
			t.Fatalf("JSON ratio %v", o)
		}
	}
	return out
}

func TestRunAndOutputs(t *testing.T) {
	var progress bytes.Buffer
	cfg := Config{
		Transports:  []string{"shm-spsc", "go-chan"},
		StreamSizes: []int{64, 4 << 10},
		RTTSizes:    []int{64},
		Counts:      []PC{{1, 1}, {2, 2}},
		Messages:    300,
		Reps:        3,
		Progress:    &progress,
	}
	results, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// os-pipe joins as the baseline; go-chan also runs 2x2 in stream mode,
	// and os-pipe too at 64 B (4 KiB frames exceed PIPE_BUF).
	if len(results) != 2*4+1+3 {
		t.Fatalf("%d results: %+v", len(results), results)
	}
	for _, r := range results {
		if !r.OK() || r.Ratio <= 0 || len(r.RepMsgsPerSec) != 3 || r.Messages != int64(3*300*r.Producers) {
			t.Fatalf("%+v", r)
		}
		if r.Reference != (r.Transport == "go-chan") {
			t.Fatalf("%s: reference %v", r.Transport, r.Reference)
		}
	}
	if got := strings.Count(progress.String(), "\n"); got != len(results) {
		t.Fatalf("%d progress lines for %d results:\n%s", got, len(results), progress.String())
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, results); err != nil {
		t.Fatal(err)
	}
	if got := checkJSON(t, js.Bytes()); len(got) != len(results) {
		t.Fatalf("%d JSON results for %d", len(got), len(results))
	}

	var svg bytes.Buffer
	if err := WriteSVG(&svg, results); err != nil {
		t.Fatal(err)
	}
	if s := svg.String(); !strings.HasPrefix(s, "<?xml") || !strings.Contains(s, "<svg") || !strings.Contains(s, "shm-spsc") {
		t.Fatalf("SVG: %.300s", s)
	}

	var tab bytes.Buffer
	if err := WriteTable(&tab, results); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"transport", "x pipe", "shm-spsc", "go-chan*", "os-pipe", "2x2", "4KiB", "1.00"} {
		if !strings.Contains(tab.String(), want) {
			t.Fatalf("table without %q:\n%s", want, tab.String())
		}
	}
}

// Unavailable and failed cells appear in the table, not in the JSON, and
// the charts still render without any result of a kind.
func TestOutputsPartial(t *testing.T) {
	results := finish([]Result{
		{Transport: Baseline, Mode: ModeStream, Size: 64, Producers: 1, Consumers: 1, MsgsPerSec: 1e6, BytesPerSec: 64e6, CPUPerMsg: time.Microsecond, Messages: 10},
		{Transport: "shm-spsc", Mode: ModeStream, Size: 64, Producers: 1, Consumers: 1, MsgsPerSec: 3e6, BytesPerSec: 192e6, CPUPerMsg: time.Microsecond, Messages: 10},
		{Transport: "posix-mq", Mode: ModeStream, Size: 64, Producers: 1, Consumers: 1, Unavailable: "not here"},
		{Transport: "tcp", Mode: ModeStream, Size: 64, Producers: 1, Consumers: 1, Err: "it broke"},
	})
	if results[0].Transport != "shm-spsc" || results[0].Ratio != 3 {
		t.Fatalf("%s: ratio %v, want shm-spsc at 3", results[0].Transport, results[0].Ratio)
	}
	var tab, js, svg bytes.Buffer
	WriteTable(&tab, results)
	for _, want := range []string{"unavailable: not here", "FAILED: it broke", "3.00"} {
		if !strings.Contains(tab.String(), want) {
			t.Fatalf("table without %q:\n%s", want, tab.String())
		}
	}
	WriteJSON(&js, results)
	if got := checkJSON(t, js.Bytes()); len(got) != 2 {
		t.Fatalf("%d JSON results, want 2", len(got))
	}
	for _, rs := range [][]Result{results, nil} {
		svg.Reset()
		if err := WriteSVG(&svg, rs); err != nil || !strings.HasPrefix(svg.String(), "<?xml") {
			t.Fatalf("SVG: %v", err)
		}
	}
}

func TestPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	cfg := Config{
		Transports:  []string{"py-mp-queue", "py-mp-pipe"},
		StreamSizes: []int{8, 4 << 10},
		RTTSizes:    []int{64},
		Messages:    200,
		Reps:        1,
	}
	results, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var py int
	for _, r := range results {
		if !strings.HasPrefix(r.Transport, "py-") {
			continue
		}
		py++
		if !r.OK() || r.Messages != 200 || !r.Reference || r.Ratio <= 0 || (r.Mode == ModeRTT && r.P50 <= 0) {
			t.Fatalf("%+v", r)
		}
	}
	if py != 6 {
		t.Fatalf("%d Python results, want 6", py)
	}
}

func TestPythonMissing(t *testing.T) {
	cfg := Config{Transports: []string{"py-mp-pipe"}, StreamSizes: []int{64}, Modes: []string{ModeStream}, Messages: 10, Python3: "/nonexistent/python3"}
	results, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := results[len(results)-1]; r.Transport != "py-mp-pipe" || !strings.Contains(r.Unavailable, "not found") {
		t.Fatalf("%+v", r)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Transports: []string{"carrier-pigeon"}},
		{Modes: []string{"burst"}},
		{StreamSizes: []int{4}},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
