package workload

import (
	"math"
	"testing"
)

func TestRollingAndUnits(t *testing.T) {
	r := NewRolling(4)
	for _, v := range []float64{3, -4, 3, -4, 100} { // 100 pushes the first 3 out
		r.Add(v)
	}
	if !r.Full() || r.Peak() != 100 || r.Last() != 100 || math.Abs(r.Mean()-23.75) > 1e-9 ||
		math.Abs(r.RMS()-math.Sqrt((16+9+16+10000)/4.0)) > 1e-9 {
		t.Errorf("rolling: mean %v rms %v peak %v", r.Mean(), r.RMS(), r.Peak())
	}
	for i := range 200_000 { // running sums stay exact over long streams
		r.Add(float64(i%7) * 1e-3)
	}
	want := NewRolling(4)
	for i := 200_000 - 4; i < 200_000; i++ {
		want.Add(float64(i%7) * 1e-3)
	}
	if math.Abs(r.Mean()-want.Mean()) > 1e-12 || math.Abs(r.Std()-want.Std()) > 1e-9 {
		t.Errorf("after a long stream: mean %v std %v, want %v %v", r.Mean(), r.Std(), want.Mean(), want.Std())
	}
	for _, c := range []struct {
		from, to string
		in, out  float64
	}{
		{"Hz", "rpm", 24.75, 1485}, {"m/s2", "g", 9.80665, 1}, {"degF", "degC", 212, 100},
		{"K", "degC", 273.15, 0}, {"degC", "degF", 100, 212}, {"in/s", "mm/s", 1, 25.4},
	} {
		if got := MustConverter(c.from, c.to)(c.in); math.Abs(got-c.out) > 1e-9 {
			t.Errorf("%v %s = %v %s, want %v", c.in, c.from, got, c.to, c.out)
		}
	}
	if _, err := NewConverter("Hz", "degC"); err == nil {
		t.Error("converted rotation to temperature")
	}
	if MinMax(5, 0, 10) != 0.5 || Standardize(12, 10, 2) != 1 {
		t.Error("scaling")
	}
}
