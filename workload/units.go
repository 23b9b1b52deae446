package workload

import "fmt"

// linear is v*scale + offset.
type linear struct{ scale, offset float64 }

// toBase converts each unit to its dimension's base unit (mm/s, g, rpm, °C,
// %, h, kW); a conversion goes through the base. The set is what factory
// sensors report for the example's physics; extend it as customers need.
var toBase = map[string]struct {
	dim string
	linear
}{
	"mm/s": {"velocity", linear{1, 0}},
	"m/s":  {"velocity", linear{1000, 0}},
	"in/s": {"velocity", linear{25.4, 0}},
	"g":    {"acceleration", linear{1, 0}},
	"m/s2": {"acceleration", linear{1 / 9.80665, 0}},
	"rpm":  {"rotation", linear{1, 0}},
	"Hz":   {"rotation", linear{60, 0}},
	"degC": {"temperature", linear{1, 0}},
	"K":    {"temperature", linear{1, -273.15}},
	"degF": {"temperature", linear{5.0 / 9, -32 * 5.0 / 9}},
	"%":    {"ratio", linear{1, 0}},
	"1":    {"ratio", linear{100, 0}},
	"h":    {"time", linear{1, 0}},
	"s":    {"time", linear{1.0 / 3600, 0}},
	"kW":   {"power", linear{1, 0}},
	"W":    {"power", linear{0.001, 0}},
}

// Converter converts a value between two units; build it once with
// NewConverter and call it per sample.
type Converter func(float64) float64

// NewConverter returns the conversion from one unit to another of the same
// dimension, e.g. ("Hz", "rpm") or ("m/s2", "g").
func NewConverter(from, to string) (Converter, error) {
	f, ok := toBase[from]
	if !ok {
		return nil, fmt.Errorf("unit %q is not known", from)
	}
	t, ok := toBase[to]
	if !ok {
		return nil, fmt.Errorf("unit %q is not known", to)
	}
	if f.dim != t.dim {
		return nil, fmt.Errorf("cannot convert %q (%s) to %q (%s)", from, f.dim, to, t.dim)
	}
	// base = v*f.scale + f.offset; v' = (base - t.offset) / t.scale
	scale := f.scale / t.scale
	offset := (f.offset - t.offset) / t.scale
	return func(v float64) float64 { return v*scale + offset }, nil
}

// MustConverter is NewConverter for units fixed in the program's code.
func MustConverter(from, to string) Converter {
	c, err := NewConverter(from, to)
	if err != nil {
		panic(err)
	}
	return c
}
