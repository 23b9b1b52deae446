package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// testdataDir is where Debian's libonnx-testdata (ONNX 1.12.0) puts ONNX's
// backend test data: data/{node,simple,real,pytorch-converted,pytorch-operator}/<test>/
// with model.onnx and test_data_set_*/{input,output}_*.pb.
const testdataDir = "/usr/share/libonnx-testdata/data"

// notRun are backend tests whose operators are all supported but which do
// not run, each with the reason. Any other test of supported operators
// must run and pass, so a supported operator's tests cannot be skipped
// silently.
var notRun = map[string]string{
	"node/test_identity_sequence":                   "the input is a sequence: only tensors are supported",
	"node/test_cast_FLOAT_to_BFLOAT16":              "ONNX 1.12's expected bfloat16 values are truncated; Cast rounds to nearest even, as onnxruntime and later ONNX test data do",
	"node/test_castlike_BFLOAT16_to_FLOAT_expanded": "ONNX 1.12's input \"like\" has shape [1] where the graph declares rank 2",
	"node/test_castlike_FLOAT_to_BFLOAT16_expanded": "ONNX 1.12's input \"like\" has shape [1] where the graph declares rank 2",
	"node/test_identity_opt":                        "the input is an optional: only tensors are supported",
}

func needTestdata(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(testdataDir); err != nil {
		msg := "needs ONNX's backend test data: apt-get install -y libonnx-testdata (or make deps)"
		if os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// TestBackendNodeTests runs every model of ONNX's backend test data whose
// operators are all supported against its expected outputs, and checks that
// every other model fails to compile naming an unsupported operator.
func TestBackendNodeTests(t *testing.T) {
	needTestdata(t)
	models, _ := filepath.Glob(filepath.Join(testdataDir, "*", "*", "model.onnx"))
	if len(models) < 1000 {
		t.Fatalf("found %d models under %s, want the 1,072 of libonnx-testdata 1.12", len(models), testdataDir)
	}
	ran := map[string]int{} // supported operator → tests run
	var run, refused, skipped int
	for _, path := range models {
		dir := filepath.Dir(path)
		name := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(data)
		if err != nil {
			t.Errorf("%s: Decode: %v", name, err)
			continue
		}
		ops, unsupported := opsOf(m)
		p, err := Compile(m)
		if unsupported != "" {
			if err == nil || !strings.Contains(err.Error(), "operator "+unsupported+" ") {
				t.Errorf("%s: Compile = %v, want an error naming %s", name, err, unsupported)
			}
			refused++
			continue
		}
		if reason, ok := notRun[name]; ok {
			t.Logf("%s: not run: %s", name, reason)
			skipped++
			continue
		}
		if err != nil {
			t.Errorf("%s: Compile: %v", name, err)
			continue
		}
		if err := runCases(p, dir); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		run++
		for _, op := range ops {
			ran[op]++
		}
	}
	for name := range notRun {
		if _, err := os.Stat(filepath.Join(testdataDir, name)); err != nil {
			t.Errorf("notRun lists %s, which does not exist", name)
		}
	}
	var counts []string
	for _, op := range Supported() {
		counts = append(counts, fmt.Sprintf("%s=%d", op, ran[op]))
	}
	sort.Strings(counts)
	t.Logf("%d models: %d run and passed, %d refused naming an unsupported operator, %d not run (notRun); tests run per operator: %s",
		len(models), run, refused, skipped, strings.Join(counts, " "))
}

// opsOf lists a model's operators as Supported names them, and the first
// unsupported one as Compile names it ("" if none).
func opsOf(m *Model) (ops []string, unsupported string) {
	seen := map[string]bool{}
	for _, n := range m.Graph.Nodes {
		if !IsSupported(n.Domain, n.OpType) {
			if unsupported == "" {
				unsupported = n.OpType
				if n.Domain != "" {
					unsupported = n.Domain + "." + n.OpType
				}
			}
			continue
		}
		if k := n.Domain + ":" + n.OpType; !seen[k] {
			seen[k] = true
			ops = append(ops, k)
		}
	}
	return ops, unsupported
}

// runCases runs each test_data_set_* of a backend test.
func runCases(p *Program, dir string) error {
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		return errors.New("no test_data_set_*")
	}
	s := p.NewSession() // run on every set too: what one set leaves in it must not change the next
	for _, set := range sets {
		inputs := map[string]*Tensor{}
		var ordered []*Tensor
		// The files are input_0.pb, input_1.pb, …, in the order of the
		// graph's inputs (initializers excluded).
		for i, in := range p.Inputs() {
			t, err := readTensor(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				return err
			}
			if in.Type.ElemType == BFloat16 {
				t = bfloat16Bits(t)
			}
			inputs[in.Name] = t
			ordered = append(ordered, t)
		}
		got, err := p.Run(inputs)
		if err != nil {
			return fmt.Errorf("%s: Run: %v", filepath.Base(set), err)
		}
		fromSession, err := s.Run(ordered)
		if err != nil {
			return fmt.Errorf("%s: Session.Run: %v", filepath.Base(set), err)
		}
		for i := range p.Outputs() {
			want, err := readTensor(filepath.Join(set, fmt.Sprintf("output_%d.pb", i)))
			if err != nil {
				return err
			}
			if got[i].Type == BFloat16 {
				want = bfloat16Bits(want)
			}
			if err := sameTensor(got[i], want); err != nil {
				return fmt.Errorf("%s: output %d: %v", filepath.Base(set), i, err)
			}
			if err := sameTensor(fromSession[i], want); err != nil {
				return fmt.Errorf("%s: a session's output %d: %v", filepath.Base(set), i, err)
			}
		}
	}
	return nil
}

// bfloat16Bits reads a uint16 tensor as the bfloat16 values of its bits:
// ONNX 1.12's test data stores bfloat16 tensors so.
func bfloat16Bits(t *Tensor) *Tensor {
	if t.Type != Uint16 {
		return t
	}
	b := &Tensor{Type: BFloat16, Shape: t.Shape, F: make([]float64, len(t.F))}
	for i, v := range t.F {
		b.F[i] = bfloatToFloat(uint16(v))
	}
	return b
}

func readTensor(path string) (*Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTensor(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Base(path), err)
	}
	return t, nil
}

// sameTensor compares within the backend tests' own tolerance
// (onnx/backend/test/case: rtol 1e-3, atol 1e-7), and reports the largest
// difference.
func sameTensor(got, want *Tensor) error {
	if got.Type != want.Type {
		return fmt.Errorf("type %s, want %s", TypeName(got.Type), TypeName(want.Type))
	}
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if want.Type == String {
		for i := range want.S {
			if got.S[i] != want.S[i] {
				return fmt.Errorf("element %d is %q, want %q", i, got.S[i], want.S[i])
			}
		}
		return nil
	}
	for i, w := range want.F {
		g := got.F[i]
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if g != w && !(math.Abs(g-w) <= 1e-7+1e-3*math.Abs(w)) {
			return fmt.Errorf("element %d is %v, want %v", i, g, w)
		}
	}
	return nil
}
