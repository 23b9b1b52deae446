package onnx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func goldenModels(t testing.TB) [][]byte {
	files, _ := filepath.Glob("../testdata/onnx/golden/*.onnx")
	if len(files) == 0 {
		t.Fatal("no models in ../testdata/onnx/golden")
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestDecodeTruncated: every prefix of a model fails to decode or compile
// with an error (or, cut between fields, decodes to a smaller model), and
// never panics.
func TestDecodeTruncated(t *testing.T) {
	for _, b := range goldenModels(t) {
		for n := 0; n < len(b); n += 1 + n/50 {
			m, err := Decode(b[:n])
			if err == nil {
				_, err = Compile(m)
			}
			_ = err
		}
	}
	if _, err := Decode([]byte{0x08}); !errors.Is(err, ErrTruncated) {
		t.Errorf("Decode(0x08) = %v, want ErrTruncated", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		data string
		want string
	}{
		{"no graph", "\x08\x07", "no graph"},
		{"bad tag", "\x08\x07\x00", "bad field tag"},
		{"group", "\x0b", "wire type 3"},
		{"length past the end", "\x3a\x10\x0a", "truncated"},
		{"wrong wire type", "\x3d\x00\x00\x00\x00", "wire type 5"},
		// graph{initializer{dims: 2^40, data_type: float}}
		{"huge tensor", "\x3a\x0b\x2a\x09\x08\x80\x80\x80\x80\x80\x20\x10\x01", "dimension"},
		// graph{initializer{dims: 3, data_type: float, float_data: [1]}}
		{"short tensor", "\x3a\x0b\x2a\x09\x08\x03\x10\x01\x25\x00\x00\x80\x3f", "has 1 values, want 3"},
		// graph{initializer{dims: 1, data_type: float, raw_data: 3 bytes}}
		{"short raw_data", "\x3a\x0b\x2a\x09\x08\x01\x10\x01\x4a\x03abc", "raw_data has 3 bytes, want 4"},
		// graph{initializer{data_type: int64, int64_data: [2^60]}}
		{"int64 beyond 2^53", "\x3a\x0e\x2a\x0c\x10\x07\x38\x80\x80\x80\x80\x80\x80\x80\x80\x10", "beyond"},
		// graph{initializer{data_location: EXTERNAL}}
		{"external data", "\x3a\x04\x2a\x02\x70\x01", "external data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decode([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Decode = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// FuzzDecode: arbitrary bytes never panic the decoder, the compiler or a
// run (Run turns a kernel's panic into an error, so the fuzzer checks it
// finds none by calling the kernels through runUnguarded).
func FuzzDecode(f *testing.F) {
	for _, b := range goldenModels(f) {
		f.Add(b)
	}
	for _, name := range []string{"test_gemm_all_attributes", "test_softmax_axis_0", "test_reshape_negative_dim", "test_argmax_keepdims_random"} {
		if b, err := os.ReadFile(filepath.Join(testdataDir, "node", name, "model.onnx")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		p, err := Compile(m)
		if err != nil {
			return
		}
		in := map[string]*Tensor{}
		for _, v := range p.Inputs() {
			if v.Type.Kind != "tensor" || !v.Type.HasShape {
				return
			}
			shape := make([]int, len(v.Type.Shape))
			for i, d := range v.Type.Shape {
				shape[i] = int(min(max(d, 1), 64))
			}
			if n, err := numel(shape); err != nil || n > 1<<12 {
				return
			}
			x, err := newTensor(v.Type.ElemType, shape)
			if err != nil {
				return
			}
			in[v.Name] = x
		}
		_, _ = runUnguarded(p, in)
	})
}

// runUnguarded is Run without its recover, so that a test sees a kernel's
// panic.
func runUnguarded(p *Program, inputs map[string]*Tensor) ([]*Tensor, error) {
	vals := map[string]*Tensor{}
	for k, v := range p.consts {
		vals[k] = v
	}
	for _, in := range p.inputs {
		t := inputs[in.Name]
		if t == nil || checkInput(in, t) != nil {
			return nil, errors.New("bad input")
		}
		vals[in.Name] = t
	}
	for _, c := range p.nodes {
		var args []*Tensor
		for _, in := range c.node.Inputs {
			args = append(args, vals[in])
		}
		outs, err := c.k.run(args)
		if err != nil {
			return nil, err
		}
		for i, name := range c.node.Outputs {
			if name != "" && i < len(outs) && outs[i] != nil {
				vals[name] = outs[i]
			}
		}
	}
	return nil, nil
}
