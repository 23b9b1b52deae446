package mlflow

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func writeDir(t *testing.T, files map[string]string, mode os.FileMode, mtime time.Time) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var pkgFiles = map[string]string{
	"MLmodel":            "flavors:\n  onnx:\n    data: model.onnx\n",
	"model.onnx":         "\x08\x08\x12\x03abc",
	"code/helpers.py":    "x = 1\n",
	"requirements.txt":   "mlflow==2.9.2",
	"input_example.json": `{"columns": ["a"], "data": [[1]]}`,
}

// The archive depends on names and contents only: two copies of a package
// written at other times with other permissions pack to the same bytes,
// in name order, and open to the same files.
func TestPackDeterministic(t *testing.T) {
	a := writeDir(t, pkgFiles, 0o600, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	b := writeDir(t, pkgFiles, 0o755, time.Now())
	var pa, pb bytes.Buffer
	if err := PackDir(a, &pa); err != nil {
		t.Fatal(err)
	}
	if err := PackDir(b, &pb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pa.Bytes(), pb.Bytes()) {
		t.Fatalf("two packings differ: %x vs %x", sha256.Sum256(pa.Bytes()), sha256.Sum256(pb.Bytes()))
	}
	p, err := Open(pa.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(p.Names(), ","), "MLmodel,code/helpers.py,input_example.json,model.onnx,requirements.txt"; got != want {
		t.Fatalf("entries %s, want %s", got, want)
	}
	for name, content := range pkgFiles {
		if b, err := p.File(name); err != nil || string(b) != content {
			t.Errorf("File(%q) = %q, %v", name, b, err)
		}
	}
	if _, err := p.File("./model.onnx"); err != nil {
		t.Errorf("File(./model.onnx): %v", err)
	}
	if _, err := p.File("../model.onnx"); err == nil {
		t.Error("File(../model.onnx) succeeded")
	}
	// A one-byte change changes the digest.
	changed := map[string]string{}
	for k, v := range pkgFiles {
		changed[k] = v
	}
	changed["requirements.txt"] = "mlflow==2.9.3"
	var pc bytes.Buffer
	if err := PackDir(writeDir(t, changed, 0o644, time.Now()), &pc); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(pa.Bytes(), pc.Bytes()) {
		t.Fatal("a changed file packs to the same bytes")
	}
}

func TestPackRefuses(t *testing.T) {
	dir := writeDir(t, pkgFiles, 0o644, time.Now())
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "model.txt")); err != nil {
		t.Fatal(err)
	}
	if err := PackDir(dir, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"model.txt" is a symbolic link`) {
		t.Fatalf("symlink: %v", err)
	}
	noMLmodel := writeDir(t, map[string]string{"model.onnx": "x"}, 0o644, time.Now())
	if err := PackDir(noMLmodel, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no MLmodel") {
		t.Fatalf("no MLmodel: %v", err)
	}
	for _, c := range []struct {
		files []File
		want  string
	}{
		{[]File{{"MLmodel", nil}, {"../x", nil}}, "leaves the package"},
		{[]File{{"MLmodel", nil}, {"/x", nil}}, "absolute"},
		{[]File{{"MLmodel", nil}, {"MLmodel", nil}}, "appears twice"},
		{[]File{{"MLmodel", nil}, {"a//b", nil}}, "not a clean"},
		{[]File{{"MLmodel", nil}, {strings.Repeat("a", 300), nil}}, "want 1 to 255 bytes"},
		{[]File{{"MLmodel", nil}, {"big", make([]byte, MaxFileBytes+1)}}, "more than"},
	} {
		if err := Pack(c.files, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Pack(%q…): %v, want %q", c.files[1].Name, err, c.want)
		}
	}
	// A long name (PAX) packs and opens.
	long := strings.Repeat("d/", 60) + "f"
	var buf bytes.Buffer
	if err := Pack([]File{{"MLmodel", []byte("x")}, {long, []byte("y")}}, &buf); err != nil {
		t.Fatal(err)
	}
	if p, err := Open(buf.Bytes()); err != nil {
		t.Fatal(err)
	} else if b, err := p.File(long); err != nil || string(b) != "y" {
		t.Fatalf("long name: %q, %v", b, err)
	}
}

func TestInputSchema(t *testing.T) {
	for _, c := range []struct {
		inputs, want, err string
	}{
		{`[{"type": "double", "name": "a", "required": true}, {"type": "long", "name": "b"}]`, "a:double b:long", ""},
		{`[{"type": "boolean"}, {"type": "float"}]`, ":boolean :float", ""},
		{`[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]`, ":double :double :double", ""},
		{`[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1, 3]}}]`, "", "a int64 tensor"},
		{`[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, -1]}}]`, "", "fixed number of features"},
		{`[{"type": "double", "name": "a"}, {"type": "double"}]`, "", "1 of 2 columns are named"},
		{`[{"type": "double", "name": "a"}, {"type": "double", "name": "a"}]`, "", "unique"},
		{`[{"type": "datetime", "name": "t"}]`, "", `column "t" has type "datetime"`},
		{`{"type": "double"}`, "", "not a JSON list"},
		{``, "", ""},
	} {
		cols, err := (&Signature{Inputs: c.inputs}).InputSchema()
		var got []string
		for _, col := range cols {
			got = append(got, col.Name+":"+col.Type)
		}
		if strings.Join(got, " ") != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("InputSchema(%s) = %q, %v; want %q, %q", c.inputs, got, err, c.want, c.err)
		}
	}
}

func TestReadExample(t *testing.T) {
	named := []Column{{"a", modelfleet.FeatureDouble}, {"b", modelfleet.FeatureBoolean}}
	unnamed := []Column{{"", modelfleet.FeatureFloat}, {"", modelfleet.FeatureFloat}}
	for _, c := range []struct {
		cols []Column
		doc  string
		want string
		err  string
	}{
		{named, `{"columns": ["b", "a"], "data": [[true, 1.5], [false, null]]}`, "[[1.5 1] [NaN 0]]", ""},
		{named, `[{"a": 2, "b": 1, "extra": "ignored"}]`, "[[2 1]]", ""},
		{named, `{"inputs": {"columns": ["a", "b"], "data": [[1, 0]]}, "params": {"k": 1}}`, "[[1 0]]", ""},
		{unnamed, `{"inputs": [[1, 2], [3, 4]]}`, "[[1 2] [3 4]]", ""},
		{unnamed, `{"data": [[1, 2]]}`, "[[1 2]]", ""},
		{unnamed, `[[1, 2, 3]]`, "", "3 values but the model takes 2"},
		{named, `[[1, 2]]`, "[[1 2]]", ""},
		{named, `{"columns": ["a"], "data": [[1]]}`, "", `column "b" of the signature is not in the example`},
		{named, `{"columns": ["a", "b"], "data": [[1]]}`, "", "row 0 has 1 values for 2 columns"},
		{unnamed, `[{"a": 1}]`, "", "record, but the signature's columns are unnamed"},
		{named, `{"x": 1}`, "", `want pandas' "split" orient`},
		{named, `{"columns": ["a", "b"], "data": [[1, "x"]]}`, "", `"x" is not a number`},
		{named, `[1e999]`, "", "neither a list"},
		{named, `[]`, "", "no rows"},
	} {
		rows, err := ReadExample([]byte(c.doc), c.cols)
		got := ""
		if rows != nil {
			got = strings.ReplaceAll(strings.Trim(strings.ReplaceAll(fmtRows(rows), "  ", " "), " "), "] [", "] [")
		}
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("ReadExample(%s) = %s, %v; want %s, %q", c.doc, got, err, c.want, c.err)
		}
	}
}

func fmtRows(rows Example) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString("[")
		for j, v := range r {
			if j > 0 {
				b.WriteString(" ")
			}
			b.WriteString(strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(fmtFloat(v), "+", ""), "e00", "")))
		}
		b.WriteString("]")
	}
	b.WriteString("]")
	return b.String()
}
