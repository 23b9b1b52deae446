package drift

import (
	"context"
	"fmt"
	"math"

	"github.com/modelfleet/modelfleet"
)

// Monitoring is a model's own data-quality thresholds: the `monitoring`
// block of its model card,
//
//	monitoring:
//	  outOfBoundsRate: 0.02   # Thresholds.OutOfBoundsRate
//	  boundsMargin: 0.1       # Thresholds.BoundsMargin
//	  nullRate: 0.001         # Thresholds.NullRate
//	  typeErrorRate: 0        # Thresholds.TypeErrorRate
//	  minQualityRows: 500     # Thresholds.MinQualityRows
//
// Each key is optional: what a card leaves out keeps the monitor's
// Options.Thresholds. The keys are Thresholds' JSON names.
type Monitoring struct {
	NullRate        *float64 `json:"nullRate,omitempty" yaml:"nullRate"`
	TypeErrorRate   *float64 `json:"typeErrorRate,omitempty" yaml:"typeErrorRate"`
	OutOfBoundsRate *float64 `json:"outOfBoundsRate,omitempty" yaml:"outOfBoundsRate"`
	BoundsMargin    *float64 `json:"boundsMargin,omitempty" yaml:"boundsMargin"`
	MinQualityRows  *int64   `json:"minQualityRows,omitempty" yaml:"minQualityRows"`
}

// Validate checks a card's values: rates from 0 to 1, a margin of at least
// 0 (0 is none), at least one row.
func (c *Monitoring) Validate() error {
	if c == nil {
		return nil
	}
	for _, r := range [...]struct {
		name string
		v    *float64
		max  float64
	}{{"nullRate", c.NullRate, 1}, {"typeErrorRate", c.TypeErrorRate, 1}, {"outOfBoundsRate", c.OutOfBoundsRate, 1}, {"boundsMargin", c.BoundsMargin, math.MaxFloat64}} {
		if r.v != nil && !(*r.v >= 0 && *r.v <= r.max) {
			return fmt.Errorf("monitoring.%s %v: want a number from 0 to %g", r.name, *r.v, r.max)
		}
	}
	if c.MinQualityRows != nil && *c.MinQualityRows < 1 {
		return fmt.Errorf("monitoring.minQualityRows %d: want at least 1", *c.MinQualityRows)
	}
	return nil
}

// Apply returns t with the card's values in place of t's. A card's margin
// of 0 means none (Thresholds.BoundsMargin's 0 is the default).
func (c *Monitoring) Apply(t Thresholds) Thresholds {
	if c == nil {
		return t
	}
	set := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&t.NullRate, c.NullRate)
	set(&t.TypeErrorRate, c.TypeErrorRate)
	set(&t.OutOfBoundsRate, c.OutOfBoundsRate)
	if c.BoundsMargin != nil {
		t.BoundsMargin = *c.BoundsMargin
		if t.BoundsMargin == 0 {
			t.BoundsMargin = -1
		}
	}
	if c.MinQualityRows != nil {
		t.MinQualityRows = *c.MinQualityRows
	}
	return t
}

// ThresholdSource gives a model version its own data-quality thresholds
// (its model card's monitoring block). nil, or an error with code
// modelfleet.ENOTFOUND, means none: the monitor's Options.Thresholds apply.
// Any other error is retried, as a baseline lookup's is.
type ThresholdSource interface {
	Monitoring(ctx context.Context, model, version string) (*Monitoring, error)
}

// MonitoringFor is a ThresholdSource in memory, keyed by model and version.
type MonitoringFor map[modelfleet.ModelRef]*Monitoring

// Monitoring implements ThresholdSource.
func (m MonitoringFor) Monitoring(_ context.Context, model, version string) (*Monitoring, error) {
	return m[modelfleet.ModelRef{Name: model, Version: version}], nil
}
