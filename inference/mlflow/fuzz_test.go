package mlflow

import (
	"bytes"
	"strconv"
	"testing"
)

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// FuzzOpen: any bytes open to a package whose every file is within the
// limits and has a clean name, or fail with an error; never a panic.
func FuzzOpen(f *testing.F) {
	var good bytes.Buffer
	if err := Pack([]File{{"MLmodel", []byte("flavors:\n  onnx: {}\n")}, {"model.onnx", []byte("abc")}, {"d/x", nil}}, &good); err != nil {
		f.Fatal(err)
	}
	g := good.Bytes()
	f.Add(g)
	f.Add(g[:len(g)-1024])
	f.Add(g[:700])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Open(data)
		if err != nil {
			return
		}
		n := 0
		for _, name := range p.Names() {
			if checkName(name) != nil {
				t.Fatalf("opened a package with file %q", name)
			}
			b, err := p.File(name)
			if err != nil || len(b) > MaxFileBytes {
				t.Fatalf("File(%q): %d bytes, %v", name, len(b), err)
			}
			n++
		}
		if _, err := p.File(MLmodelFile); err != nil || n > MaxEntries {
			t.Fatalf("opened a package of %d files without MLmodel: %v", n, err)
		}
	})
}

// FuzzParseMLmodel: MLmodel files, their signatures and input examples
// parse or fail with an error; never a panic.
func FuzzParseMLmodel(f *testing.F) {
	f.Add([]byte("flavors:\n  xgboost:\n    data: model.json\n    model_format: json\nsignature:\n  inputs: '[{\"type\": \"double\", \"name\": \"a\", \"required\": true}]'\n"),
		[]byte(`{"columns": ["a"], "data": [[1]]}`))
	f.Add([]byte("flavors:\n  onnx: {data: model.onnx}\nsignature:\n  inputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": \"float32\", \"shape\": [-1, 2]}}]'\n"),
		[]byte(`{"inputs": [[1, 2]]}`))
	f.Add([]byte("flavors: &a [*a]\n"), []byte(`[{"a": null}]`))
	f.Add([]byte("a: &a [*a, *a, *a]\nb: &b [*a, *a, *a]\nflavors: {x: {}}\n"), []byte(`{"inputs": {"columns": [1], "data": [[true]]}}`))
	f.Fuzz(func(t *testing.T, mlmodel, example []byte) {
		m, err := ParseMLmodel(mlmodel)
		if err != nil {
			return
		}
		_ = m.FlavorNames()
		for _, fl := range m.Flavors {
			_ = fl.String("data")
		}
		cols, err := m.Signature.InputSchema()
		if err != nil {
			return
		}
		if cols == nil {
			cols = []Column{{}}
		}
		rows, err := ReadExample(example, cols)
		if err != nil {
			return
		}
		for _, r := range rows {
			if len(r) != len(cols) {
				t.Fatalf("row of %d values for %d columns", len(r), len(cols))
			}
		}
	})
}
