package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	colorBetter = color.RGBA{R: 0x2e, G: 0x8b, B: 0x57, A: 0xff} // the cluster is better
	colorWorse  = color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff} // the reference is better
)

// renderPlot draws one horizontal bar per plotted metric: the ratio cluster /
// reference, green where it favours the cluster, red where it favours the
// reference, with a line at 1.0. The format follows path's extension (.svg,
// .png, .pdf).
func renderPlot(path string, rows []Row) error {
	rows = plotRows(rows)
	p := plot.New()
	p.Title.Text = "Cluster / reference socket.io 0.9.19 (median of runs)"
	p.X.Label.Text = "ratio cluster / reference (green: the cluster is better)"
	n := len(rows)
	if n == 0 {
		p.Title.Text += ": no data"
		return save(p, 8*vg.Inch, 2*vg.Inch, path)
	}
	better := make(plotter.Values, n)
	worse := make(plotter.Values, n)
	names := make([]string, n)
	var labels plotter.XYLabels
	top := 1.0
	for i, r := range rows {
		// The first row at the top: the nominal Y axis counts upward.
		j := n - 1 - i
		if Better(r.Metric.Better, r.Ratio) {
			better[j] = r.Ratio
		} else {
			worse[j] = r.Ratio
		}
		names[j] = fmt.Sprintf("%s: %s (%s better)", r.Scenario.Scenario.Name, r.Metric.Name, r.Metric.Better)
		labels.XYs = append(labels.XYs, plotter.XY{X: r.Ratio, Y: float64(j)})
		labels.Labels = append(labels.Labels, fmt.Sprintf(" %.2f×", r.Ratio))
		top = math.Max(top, r.Ratio)
	}
	width := vg.Points(14)
	for _, set := range []struct {
		v plotter.Values
		c color.Color
	}{{better, colorBetter}, {worse, colorWorse}} {
		bars, err := plotter.NewBarChart(set.v, width)
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.Color = set.c
		bars.LineStyle.Width = 0
		p.Add(bars)
	}
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(n) - 0.5}})
	if err != nil {
		return err
	}
	one.LineStyle.Width = vg.Points(1.5)
	one.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	lab, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	for i := range lab.TextStyle {
		lab.TextStyle[i].YAlign = draw.YCenter
	}
	p.Add(lab)
	p.NominalY(names...)
	p.X.Min = 0
	p.X.Max = top * 1.2 // room for the labels
	p.X.Tick.Marker = ratioTicks{}
	p.Add(plotter.NewGrid())
	return save(p, 9*vg.Inch, vg.Length(n)*0.32*vg.Inch+1.3*vg.Inch, path)
}

// save writes the plot with a margin on the left: an SVG's fonts are not
// embedded, and a viewer's substitute may be wider than the metrics the
// layout used.
func save(p *plot.Plot, w, h vg.Length, path string) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return err
	}
	p.Draw(draw.Crop(draw.New(c), vg.Inch/3, -vg.Inch/10, vg.Inch/20, -vg.Inch/20))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ratioTicks labels the ratio axis at round steps that include 1.
type ratioTicks struct{}

// Ticks implements plot.Ticker.
func (ratioTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 0.25
	for _, s := range []float64{0.25, 0.5, 1, 2, 5, 10, 20, 50, 100} {
		step = s
		if (hi-lo)/s <= 8 {
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 4, 64)})
	}
	return ticks
}
