package ui

import (
	"fmt"
	"math"
	"strings"
)

// Charts are inline SVG the templates draw from these figures: no
// script, nothing fetched.

// bar is a value against its threshold on one scale: the bar's width and
// the threshold mark's position, in a 200-unit-wide box.
type bar struct {
	Width, Mark float64
	Over        bool
	Label       string
}

const barWidth = 200

func newBar(value, threshold float64) bar {
	scale := max(value, threshold*1.5, 1e-9)
	b := bar{Width: clamp(value/scale) * barWidth, Mark: clamp(threshold/scale) * barWidth, Over: threshold > 0 && value > threshold}
	b.Label = fmt.Sprintf("%.4g of threshold %.4g", value, threshold)
	return b
}

// spark is a feature's metric over its last windows: a polyline in a
// 200×40 box, with the threshold as a line.
type spark struct {
	Points    string
	Threshold float64 // y of the threshold line
	N         int
	Label     string
}

const sparkW, sparkH = 200.0, 40.0

func newSpark(ps []point, threshold float64) spark {
	s := spark{N: len(ps)}
	if len(ps) == 0 {
		return s
	}
	top := threshold * 1.5
	for _, p := range ps {
		top = max(top, p.Value)
	}
	top = max(top, 1e-9)
	y := func(v float64) float64 { return sparkH - clamp(v/top)*(sparkH-2) - 1 }
	var b strings.Builder
	for i, p := range ps {
		x := sparkW
		if len(ps) > 1 {
			x = float64(i) * sparkW / float64(len(ps)-1)
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y(p.Value))
	}
	s.Points = strings.TrimSpace(b.String())
	s.Threshold = y(threshold)
	s.Label = fmt.Sprintf("%d windows, latest %.4g, threshold %.4g", len(ps), ps[len(ps)-1].Value, threshold)
	return s
}

func clamp(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return math.Min(1, math.Max(0, f))
}
