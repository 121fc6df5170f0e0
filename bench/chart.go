package bench

import (
	"fmt"
	"io"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteSVG draws two charts side by side: streaming throughput against
// message size (log-log, one line per transport and count), and the
// round-trip latency percentiles of each transport at the smallest rtt
// size (log scale).
func WriteSVG(w io.Writer, results []Result) error {
	tp, err := throughputPlot(results)
	if err != nil {
		return err
	}
	lp, err := latencyPlot(results)
	if err != nil {
		return err
	}
	const width, height = 16 * vg.Inch, 7 * vg.Inch
	c := vgsvg.New(width, height)
	dc := draw.New(c)
	// Rotated tick labels are not measured whole: pad below for them.
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 2, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 2, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align([][]*plot.Plot{{tp, lp}}, tiles, dc)
	tp.Draw(canvases[0][0])
	lp.Draw(canvases[0][1])
	_, err = c.WriteTo(w)
	return err
}

func throughputPlot(results []Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Streaming throughput (payload MB/s, median of repetitions)"
	p.X.Label.Text = "message size"
	p.Y.Label.Text = "MB/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = logTicks{format: func(v float64) string { return fmt.Sprintf("%g", v) }}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(6)

	type key struct {
		name string
		pc   PC
	}
	var keys []key
	series := map[key]plotter.XYs{}
	var sizes []int
	lo, hi := math.Inf(1), 0.0
	for _, r := range results {
		if r.Mode != ModeStream || !r.OK() || r.BytesPerSec <= 0 {
			continue
		}
		k := key{r.Transport, PC{r.Producers, r.Consumers}}
		if _, ok := series[k]; !ok {
			keys = append(keys, k)
		}
		series[k] = append(series[k], plotter.XY{X: float64(r.Size), Y: r.BytesPerSec / 1e6})
		lo, hi = min(lo, r.BytesPerSec/1e6), max(hi, r.BytesPerSec/1e6)
		if !slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
	}
	if len(keys) == 0 {
		return emptyPlot(p, "no streaming results"), nil
	}
	slices.Sort(sizes)
	var ticks plot.ConstantTicks
	for _, s := range sizes {
		ticks = append(ticks, plot.Tick{Value: float64(s), Label: FormatSize(s)})
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = float64(sizes[0])/1.5, float64(sizes[len(sizes)-1])*1.5
	p.Y.Min, p.Y.Max = lo/1.5, hi*2
	for i, k := range keys {
		xys := series[k]
		slices.SortFunc(xys, func(a, b plotter.XY) int { return int(a.X - b.X) })
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / len(plotutil.DefaultColors))
		l.Width = vg.Points(1.5)
		pts.Shape = plotutil.Shape(i)
		p.Add(l, pts)
		name := refLabel(k.name)
		if k.pc != (PC{1, 1}) {
			name += " " + k.pc.String()
		}
		p.Legend.Add(name, l, pts)
	}
	return p, nil
}

func latencyPlot(results []Result) (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = "round trip"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{format: fmtDurF}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(6)
	size := math.MaxInt
	for _, r := range results {
		if r.Mode == ModeRTT && r.OK() && r.P50 > 0 {
			size = min(size, r.Size)
		}
	}
	if size == math.MaxInt {
		p.Title.Text = "Round-trip latency"
		return emptyPlot(p, "no round-trip results"), nil
	}
	p.Title.Text = fmt.Sprintf("Round-trip latency, %s messages (percentiles, median of repetitions)", FormatSize(size))
	var names []string
	pcts := []struct {
		name string
		get  func(*Result) float64
	}{
		{"p50", func(r *Result) float64 { return float64(r.P50) }},
		{"p90", func(r *Result) float64 { return float64(r.P90) }},
		{"p99", func(r *Result) float64 { return float64(r.P99) }},
		{"p99.9", func(r *Result) float64 { return float64(r.P999) }},
	}
	pts := make([]plotter.XYs, len(pcts))
	lo, hi := math.Inf(1), 0.0
	for _, r := range results {
		if r.Mode != ModeRTT || r.Size != size || !r.OK() || r.P50 <= 0 {
			continue
		}
		x := float64(len(names))
		names = append(names, refLabel(r.Transport))
		for i, pc := range pcts {
			if v := pc.get(&r); v > 0 {
				pts[i] = append(pts[i], plotter.XY{X: x, Y: v})
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	for i, pc := range pcts {
		if len(pts[i]) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts[i])
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		s.Color = plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		s.Radius = vg.Points(4)
		p.Add(s)
		p.Legend.Add(pc.name, s)
	}
	p.NominalX(names...)
	// Room around the points (and above them for the legend).
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.Y.Min, p.Y.Max = lo/1.5, hi*4
	p.X.Tick.Label.Rotation = math.Pi / 5
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return p, nil
}

// refLabel marks the references in the charts' labels.
func refLabel(name string) string {
	switch {
	case lookupPy(name) != nil:
		return name + " (Python)"
	case lookupTransport(name) != nil && lookupTransport(name).inProcess:
		return name + " (in-process)"
	}
	return name
}

// logTicks labels a log axis at 1-2-5 steps.
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= 0 {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi*10; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo/1.01 || v > hi*1.01 {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: t.format(v)})
		}
	}
	return ticks
}

func fmtDurF(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%gms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%gµs", ns/1e3)
	}
	return fmt.Sprintf("%gns", ns)
}

// emptyPlot gives p a note instead of data, so the SVG still renders.
func emptyPlot(p *plot.Plot, note string) *plot.Plot {
	p.X.Scale, p.Y.Scale = plot.LinearScale{}, plot.LinearScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.DefaultTicks{}, plot.DefaultTicks{}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: 0.5, Y: 0.5}}, Labels: []string{note}})
	if err == nil {
		p.Add(l)
	}
	return p
}
