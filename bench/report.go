package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteTable prints results as a table: one row per cell, a blank line
// between groups of one mode and size. Stream rows give messages/s, MB/s
// (10^6 bytes of payload) and CPU per message; rtt rows give round trips/s,
// latency percentiles and CPU per round trip. "x pipe" is Ratio. Rows
// marked * are references, not cross-process Go IPC.
func WriteTable(w io.Writer, results []Result) error {
	head := []string{"transport", "mode", "size", "PxC", "msgs/s", "MB/s", "p50", "p99", "p99.9", "cpu/msg", "x pipe"}
	rows := [][]string{head}
	notes := map[int]string{}
	var prev string
	anyRef, anyChan, anyPy := false, false, false
	for _, r := range results {
		group := r.Mode + FormatSize(r.Size)
		if prev != "" && group != prev {
			rows = append(rows, nil)
		}
		prev = group
		name := r.Transport
		if r.Reference {
			name += "*"
			anyRef = true
			if strings.HasPrefix(r.Transport, "py-") {
				anyPy = true
			} else {
				anyChan = true
			}
		}
		row := []string{name, r.Mode, FormatSize(r.Size), PC{r.Producers, r.Consumers}.String()}
		switch {
		case r.Unavailable != "":
			notes[len(rows)] = "unavailable: " + r.Unavailable
		case r.Err != "":
			notes[len(rows)] = "FAILED: " + firstLine(r.Err)
		case r.Mode == ModeRTT:
			row = append(row, fmtRate(r.MsgsPerSec), "-", fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.P999), fmtDur(r.CPUPerMsg), fmtRatio(r.Ratio))
		default:
			row = append(row, fmtRate(r.MsgsPerSec), fmt.Sprintf("%.1f", r.BytesPerSec/1e6), "-", "-", "-", fmtDur(r.CPUPerMsg), fmtRatio(r.Ratio))
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for i, row := range rows {
		if _, ok := notes[i]; ok {
			row = row[:4]
		}
		for j, c := range row {
			width[j] = max(width[j], len([]rune(c)))
		}
	}
	var b strings.Builder
	for i, row := range rows {
		for j, c := range row {
			pad := strings.Repeat(" ", width[j]-len([]rune(c)))
			if j > 0 {
				b.WriteString("  ")
			}
			if j < 4 {
				b.WriteString(c)
				if j < len(row)-1 || notes[i] != "" {
					b.WriteString(pad)
				}
			} else {
				b.WriteString(pad + c)
			}
		}
		if n := notes[i]; n != "" {
			b.WriteString("  " + n)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nmsgs/s: messages (stream) or round trips (rtt) per second, median of the repetitions; MB/s: payload, 10^6 bytes/s.\n")
	b.WriteString("cpu/msg: user+system CPU of both processes per message or round trip. x pipe: throughput / os-pipe's (stream),\n")
	b.WriteString("os-pipe's p50 / p50 (rtt), same size, same run: above 1 beats the pipe. The pipe at the same PxC (one pipe,\n")
	b.WriteString("P writers, C readers, frames <= PIPE_BUF) where it ran, else at 1x1 (messages above 4092 bytes).\n")
	if anyRef {
		b.WriteString("* reference, not a Go cross-process transport.\n")
		if anyChan {
			b.WriteString("  go-chan: two goroutines of one process, no process boundary.\n")
		}
		if anyPy {
			b.WriteString("  py-mp-*: Python's multiprocessing; percentiles exact from sorted samples, not from the histogram.\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func fmtRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f GB/s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f MB/s", v/1e6)
	}
	return fmt.Sprintf("%.1f kB/s", v/1e3)
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.2fms", float64(d)/1e6)
}

func fmtRatio(r float64) string {
	if r <= 0 {
		return "-"
	}
	if r >= 10 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// JSONResult is the JSON form of a measured Result. The first twelve
// fields are the stable interface; latency fields are null in stream mode
// and ratio_vs_pipe is null without a baseline.
type JSONResult struct {
	Transport   string   `json:"transport"`
	Mode        string   `json:"mode"`
	Size        int      `json:"size"`
	Producers   int      `json:"producers"`
	Consumers   int      `json:"consumers"`
	MsgsPerSec  float64  `json:"msgs_per_sec"`
	BytesPerSec float64  `json:"bytes_per_sec"`
	P50         *float64 `json:"p50_ns"`
	P99         *float64 `json:"p99_ns"`
	P999        *float64 `json:"p999_ns"`
	CPUPerMsg   float64  `json:"cpu_ns_per_msg"`
	Ratio       *float64 `json:"ratio_vs_pipe"`

	P90           *float64  `json:"p90_ns,omitempty"`
	Max           *float64  `json:"max_ns,omitempty"`
	RepMsgsPerSec []float64 `json:"rep_msgs_per_sec"`
	Messages      int64     `json:"messages"`
	Reference     bool      `json:"reference"`
}

// JSON converts the measured results (unavailable and failed cells are
// left out).
func JSON(results []Result) []JSONResult {
	out := []JSONResult{}
	ns := func(d time.Duration) *float64 {
		v := float64(d.Nanoseconds())
		return &v
	}
	for _, r := range results {
		if !r.OK() {
			continue
		}
		j := JSONResult{
			Transport: r.Transport, Mode: r.Mode, Size: r.Size, Producers: r.Producers, Consumers: r.Consumers,
			MsgsPerSec: r.MsgsPerSec, BytesPerSec: r.BytesPerSec, CPUPerMsg: float64(r.CPUPerMsg.Nanoseconds()),
			RepMsgsPerSec: r.RepMsgsPerSec, Messages: r.Messages, Reference: r.Reference,
		}
		if r.Mode == ModeRTT {
			j.P50, j.P90, j.P99, j.P999, j.Max = ns(r.P50), ns(r.P90), ns(r.P99), ns(r.P999), ns(r.Max)
		}
		if r.Ratio > 0 {
			v := r.Ratio
			j.Ratio = &v
		}
		out = append(out, j)
	}
	return out
}

// WriteJSON writes the measured results as a JSON array of JSONResult.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(JSON(results))
}
