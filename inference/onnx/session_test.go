package onnx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// TestSessionAgreesWithRun: a Session run again and again, on rows of
// every kind and batches of changing size, returns exactly what a fresh
// Program.Run returns for the same input: nothing a kernel reuses from one
// run leaks into the next.
func TestSessionAgreesWithRun(t *testing.T) {
	files, _ := filepath.Glob("../testdata/onnx/golden/*.onnx")
	if len(files) == 0 {
		t.Fatal("no models in ../testdata/onnx/golden")
	}
	rng := rand.New(rand.NewPCG(15, 1))
	values := []float64{math.NaN(), 0, -1, 1, 0.5, -0.25, 3, 1e6, -1e6}
	for i, data := range goldenModels(t) {
		name := filepath.Base(files[i])
		m, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		s := p.NewSession()
		reused := 0
		var last []*Tensor // the tensors of the session's last run
		for run := range 200 {
			rows := 1
			if run%5 == 4 {
				rows = 1 + rng.IntN(4) // a batch: outputs of another shape
			}
			in := make([]*Tensor, len(p.Inputs()))
			byName := map[string]*Tensor{}
			for k, v := range p.Inputs() {
				cols := int(v.Type.Shape[1])
				x := &Tensor{Type: v.Type.ElemType, Shape: []int{rows, cols}, F: make([]float64, rows*cols)}
				for j := range x.F {
					x.F[j] = values[rng.IntN(len(values))]
					if rng.IntN(2) == 0 {
						x.F[j] = float64(float32(rng.NormFloat64() * 2))
					}
				}
				in[k], byName[v.Name] = x, x
			}
			want, err := p.Run(byName)
			if err != nil {
				t.Fatalf("%s run %d: Run: %v", name, run, err)
			}
			got, err := s.Run(in)
			if err != nil {
				t.Fatalf("%s run %d: Session.Run: %v", name, run, err)
			}
			for o := range got {
				if o < len(last) && got[o] == last[o] {
					reused++
				}
			}
			last = append(last[:0], got...)
			for o := range want {
				if err := identical(got[o], want[o]); err != nil {
					t.Fatalf("%s run %d (%d rows): output %d: %v", name, run, rows, o, err)
				}
			}
		}
		t.Logf("%s: %d outputs written over", name, reused)
		reuses := false
		for _, c := range p.nodes {
			_, ok := c.k.(reuser)
			reuses = reuses || ok
		}
		if reuses && reused == 0 {
			t.Errorf("%s: the session wrote no output over", name)
		}
	}
}

// identical says how two tensors differ, bit for bit (NaN equal to NaN).
func identical(got, want *Tensor) error {
	if got.Type != want.Type || fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		return fmt.Errorf("got %s %v, want %s %v", TypeName(got.Type), got.Shape, TypeName(want.Type), want.Shape)
	}
	if len(got.F) != len(want.F) || strings.Join(got.S, "\x00") != strings.Join(want.S, "\x00") {
		return fmt.Errorf("got %v %q, want %v %q", got.F, got.S, want.F, want.S)
	}
	for i := range got.F {
		if math.Float64bits(got.F[i]) != math.Float64bits(want.F[i]) && !(math.IsNaN(got.F[i]) && math.IsNaN(want.F[i])) {
			return fmt.Errorf("value %d: got %v, want %v", i, got.F[i], want.F[i])
		}
	}
	if fmt.Sprint(got.IntKeys, got.StrKeys) != fmt.Sprint(want.IntKeys, want.StrKeys) {
		return fmt.Errorf("keys %v %v, want %v %v", got.IntKeys, got.StrKeys, want.IntKeys, want.StrKeys)
	}
	return nil
}

// TestSessionOfTreesAllocatesNothing: once a session has run, a row through
// a tree ensemble (and a ZipMap after it) allocates nothing: the router
// scores ONNX models so on every request.
func TestSessionOfTreesAllocatesNothing(t *testing.T) {
	files, _ := filepath.Glob("../testdata/onnx/golden/*.onnx")
	checked := 0
	for i, data := range goldenModels(t) {
		m, err := Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		trees := true
		for _, c := range p.nodes {
			if _, ok := c.k.(reuser); !ok {
				trees = false
			}
		}
		if !trees {
			continue
		}
		in := make([]*Tensor, len(p.Inputs()))
		for k, v := range p.Inputs() {
			cols := int(v.Type.Shape[1])
			in[k] = &Tensor{Type: v.Type.ElemType, Shape: []int{1, cols}, F: make([]float64, cols)}
		}
		s := p.NewSession()
		if n := testing.AllocsPerRun(50, func() {
			if _, err := s.Run(in); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: a session's run allocates %v times", filepath.Base(files[i]), n)
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("%d golden models are tree ensembles only, want at least 3", checked)
	}
}
