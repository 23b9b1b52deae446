package inference

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// FuzzLoadXGBoost: any file given as an XGBoost model loads into a model
// that predicts finite outputs for any row, or fails with an invalid-input
// error; it never panics, loops or allocates without bound.
func FuzzLoadXGBoost(f *testing.F) {
	// A small hand-written tree (the mutator is faster on it), its UBJSON
	// form, and truncations.
	tiny := []byte(tinyXGB)
	f.Add(tiny)
	f.Add(tiny[:len(tiny)/2])
	f.Add(toUBJSON(f, tiny))
	f.Add([]byte(`{"learner": {}}`))
	f.Add([]byte("{L\x00\x00\x00\x00\x00\x00\x00\x07learner{}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(modelfleet.FormatXGBoost, data)
		if err != nil {
			if m != nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("Load = %v, %v: want nil and an invalid error", m, err)
			}
			return
		}
		for _, v := range []float64{0, -1, 1.5, 1e9, math.NaN()} {
			x := make([]float64, m.NumFeatures())
			for i := range x {
				x[i] = v
			}
			p, err := m.Probabilities(x, nil)
			if err != nil && modelfleet.ErrorCode(err) == modelfleet.EINVALID {
				t.Fatalf("Probabilities(%v...) on a loaded model: %v", v, err)
			}
			if err == nil && len(p) != max(1, m.NumClasses()-map[bool]int{true: 1}[m.Task() == TaskBinary]) {
				t.Fatalf("%d outputs for a %s model with %d classes", len(p), m.Task(), m.NumClasses())
			}
		}
	})
}

// FuzzUBJSON: the transcoder returns valid JSON or an error.
func FuzzUBJSON(f *testing.F) {
	for _, seed := range []string{"{U\x01aU\x05}", "[$d#U\x02\x3f\x80\x00\x00\xbf\x00\x00\x00", "[$Z#U\x05",
		"{#U\x01U\x01kSU\x02hi", "[N[]N]", "HU\x041e-3", "CA", "[#U\x02TF"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := ubjsonToJSON(data)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("ubjsonToJSON(%q) = %q: not valid JSON", data, out)
		}
		if len(out) > 64*len(data)+64 {
			t.Fatalf("%d bytes of JSON from %d bytes", len(out), len(data))
		}
	})
}

// toUBJSON encodes a JSON document as UBJSON (objects, arrays, strings,
// int64 and float64 numbers), for seeds and tests.
func toUBJSON(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	var enc func(b []byte, v any) []byte
	str := func(b []byte, s string) []byte {
		b = append(b, 'L')
		b = appendBE(b, uint64(len(s)), 8)
		return append(b, s...)
	}
	enc = func(b []byte, v any) []byte {
		switch v := v.(type) {
		case map[string]any:
			b = append(b, '{')
			for k, e := range v {
				b = enc(str(b, k), e)
			}
			return append(b, '}')
		case []any:
			b = append(b, '[')
			for _, e := range v {
				b = enc(b, e)
			}
			return append(b, ']')
		case string:
			return str(append(b, 'S'), v)
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
				return appendBE(append(b, 'L'), uint64(int64(v)), 8)
			}
			return appendBE(append(b, 'D'), math.Float64bits(v), 8)
		case bool:
			if v {
				return append(b, 'T')
			}
			return append(b, 'F')
		}
		return append(b, 'Z')
	}
	return enc(nil, v)
}

func appendBE(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}
