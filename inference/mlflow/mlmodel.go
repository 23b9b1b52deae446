package mlflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// Limits of what a package declares.
const (
	MaxMLmodelBytes = 1 << 20 // the MLmodel file
	MaxExampleBytes = 4 << 20 // the input example file
	MaxExampleRows  = 10000   // rows of the input example
	MaxColumns      = 1 << 20 // columns of a signature (the runtime's feature limit)
)

// MLmodel is what the edge reads of an MLmodel file (mlflow.models.Model
// as MLflow writes it with yaml.safe_dump): the flavours, the signature and
// the input example. Other keys (run_id, model_uuid, …) are ignored.
type MLmodel struct {
	ArtifactPath  string            `yaml:"artifact_path"`
	MLflowVersion string            `yaml:"mlflow_version"`
	Flavors       map[string]Flavor `yaml:"flavors"`
	Signature     *Signature        `yaml:"signature"`
	InputExample  *ExampleInfo      `yaml:"saved_input_example_info"`
}

// Flavor is one flavour's configuration: the keys MLflow's flavour module
// wrote (data, model_format, pickled_model, serialization_format, …).
type Flavor map[string]any

// String returns the flavour's key as a string ("" if absent or not a
// string).
func (f Flavor) String(key string) string {
	s, _ := f[key].(string)
	return s
}

// Signature holds the signature's inputs and outputs as MLflow stores them:
// each a JSON string (a list of column or tensor specs).
type Signature struct {
	Inputs  string `yaml:"inputs"`
	Outputs string `yaml:"outputs"`
}

// ExampleInfo says where the input example is and how it is written.
type ExampleInfo struct {
	ArtifactPath string `yaml:"artifact_path"`
	Type         string `yaml:"type"`          // "dataframe" or "ndarray"
	PandasOrient string `yaml:"pandas_orient"` // "split" or "records" (dataframe)
	Format       string `yaml:"format"`        // "tf-serving" (ndarray)
}

// ParseMLmodel parses an MLmodel file.
func ParseMLmodel(data []byte) (*MLmodel, error) {
	if len(data) > MaxMLmodelBytes {
		return nil, fmt.Errorf("MLmodel: %d bytes, more than %d", len(data), MaxMLmodelBytes)
	}
	var m MLmodel
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("MLmodel: %v", err)
	}
	if len(m.Flavors) == 0 {
		return nil, fmt.Errorf("MLmodel: no flavors: not an MLflow model")
	}
	return &m, nil
}

// FlavorNames lists the package's flavours, sorted.
func (m *MLmodel) FlavorNames() []string {
	var names []string
	for k := range m.Flavors {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Column is one input of a signature: its name ("" when the signature's
// columns are unnamed) and type.
type Column struct {
	Name string
	Type string
}

// InputSchema reads the signature's inputs: a list of named columns
// (MLflow's ColSpec: {"type": "double", "name": "x", "required": true}) of
// the types in ColumnTypes, or one 2-D float tensor with a fixed number of
// columns ({"type": "tensor", "tensor-spec": {"dtype": "float32", "shape":
// [-1, 4]}}), whose columns are unnamed. Anything else (strings, several
// tensors, optional columns) the edge cannot be sent, and is an error
// saying which input.
func (s *Signature) InputSchema() ([]Column, error) {
	if s == nil || strings.TrimSpace(s.Inputs) == "" {
		return nil, nil
	}
	var specs []struct {
		Type       string  `json:"type"`
		Name       *string `json:"name"`
		Required   *bool   `json:"required"`
		TensorSpec *struct {
			Dtype string  `json:"dtype"`
			Shape []int64 `json:"shape"`
		} `json:"tensor-spec"`
	}
	if err := json.Unmarshal([]byte(s.Inputs), &specs); err != nil {
		return nil, fmt.Errorf("signature inputs: not a JSON list of column or tensor specs: %v", err)
	}
	if len(specs) == 0 {
		return nil, nil
	}
	if specs[0].Type == "tensor" {
		t := specs[0].TensorSpec
		switch {
		case len(specs) != 1:
			return nil, fmt.Errorf("signature inputs: %d tensors: the edge runtime takes one 2-D float tensor", len(specs))
		case t == nil:
			return nil, fmt.Errorf("signature inputs: a tensor without its tensor-spec")
		case t.Dtype != "float32" && t.Dtype != "float64":
			return nil, fmt.Errorf("signature inputs: a %s tensor: the edge runtime takes one 2-D float tensor (float32 or float64)", t.Dtype)
		case len(t.Shape) != 2 || t.Shape[1] < 1 || t.Shape[1] > MaxColumns:
			return nil, fmt.Errorf("signature inputs: a tensor of shape %v: the edge runtime takes one 2-D tensor [-1, features] with a fixed number of features", t.Shape)
		}
		typ := modelfleet.FeatureDouble
		if t.Dtype == "float32" {
			typ = modelfleet.FeatureFloat
		}
		cols := make([]Column, t.Shape[1])
		for i := range cols {
			cols[i].Type = typ
		}
		return cols, nil
	}
	if len(specs) > MaxColumns {
		return nil, fmt.Errorf("signature inputs: %d columns, more than %d", len(specs), MaxColumns)
	}
	cols := make([]Column, len(specs))
	seen := map[string]bool{}
	named := 0
	for i, sp := range specs {
		what := fmt.Sprintf("column %d", i)
		if sp.Name != nil {
			what = fmt.Sprintf("column %q", *sp.Name)
			if *sp.Name == "" || seen[*sp.Name] {
				return nil, fmt.Errorf("signature inputs: %s: names must be unique and non-empty", what)
			}
			seen[*sp.Name] = true
			cols[i].Name = *sp.Name
			named++
		}
		switch {
		case sp.Type == "tensor":
			return nil, fmt.Errorf("signature inputs: %s is a tensor beside columns", what)
		case !slices.Contains(modelfleet.FeatureTypes, sp.Type):
			return nil, fmt.Errorf("signature inputs: %s has type %q: the edge runtime takes %s features", what, sp.Type, strings.Join(modelfleet.FeatureTypes, ", "))
		case sp.Required != nil && !*sp.Required:
			return nil, fmt.Errorf("signature inputs: %s is optional: the edge runtime sends every feature (a missing value is NaN)", what)
		}
		cols[i].Type = sp.Type
	}
	if named != 0 && named != len(cols) {
		return nil, fmt.Errorf("signature inputs: %d of %d columns are named: name all or none", named, len(cols))
	}
	return cols, nil
}

// Example is an input example read as rows of numbers, in the column order
// of the signature it was read against.
type Example [][]float64

// ReadExample reads the input example data (the file ExampleInfo names) as rows
// of len(cols) values in cols' order. Dataframes are pandas' "split" orient
// ({"columns": [...], "data": [[...]]}, as MLflow writes them) or
// "records" ([{"name": value, ...}]); ndarrays are {"inputs": [[...]]}
// (MLflow's tf-serving format) or a bare list of rows. Named columns are
// matched by name, unnamed ones by position; null is a missing value (NaN),
// true and false are 1 and 0.
func ReadExample(data []byte, cols []Column) (Example, error) {
	if len(data) > MaxExampleBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), MaxExampleBytes)
	}
	named := len(cols) > 0 && cols[0].Name != ""
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if d, ok := doc.(map[string]any); ok {
		if in, ok := d["inputs"].(map[string]any); ok {
			doc = in // an example with inference params: {"inputs": <example>, "params": {...}}
		}
	}
	var columns []string
	var rows []any
	switch d := doc.(type) {
	case map[string]any:
		switch {
		case d["data"] != nil:
			cs, _ := d["columns"].([]any) // MLflow leaves out a default 0, 1, … index
			for _, c := range cs {
				s, ok := c.(string)
				if !ok {
					s = fmt.Sprint(c) // pandas writes integer column labels as numbers
				}
				columns = append(columns, s)
			}
			var ok bool
			if rows, ok = d["data"].([]any); !ok {
				return nil, fmt.Errorf(`"data" is not a list of rows`)
			}
		case d["inputs"] != nil || d["instances"] != nil:
			in := d["inputs"]
			if in == nil {
				in = d["instances"]
			}
			var ok bool
			if rows, ok = in.([]any); !ok {
				return nil, fmt.Errorf(`"inputs" is not a list of rows`)
			}
		default:
			return nil, fmt.Errorf(`want pandas' "split" orient {"columns": [...], "data": [[...]]}, "records" [{...}], or {"inputs": [[...]]}`)
		}
	case []any:
		rows = d
	default:
		return nil, fmt.Errorf("want a JSON object or list")
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no rows")
	}
	if len(rows) > MaxExampleRows {
		return nil, fmt.Errorf("%d rows, more than %d", len(rows), MaxExampleRows)
	}
	// pos maps each signature column to its index in a row.
	var pos []int
	if columns != nil && named {
		idx := make(map[string]int, len(columns))
		for i, c := range columns {
			idx[c] = i
		}
		for _, c := range cols {
			i, ok := idx[c.Name]
			if !ok {
				return nil, fmt.Errorf("column %q of the signature is not in the example", c.Name)
			}
			pos = append(pos, i)
		}
	}
	out := make(Example, 0, len(rows))
	for r, raw := range rows {
		row := make([]float64, len(cols))
		switch v := raw.(type) {
		case map[string]any:
			if !named {
				return nil, fmt.Errorf("row %d is a record, but the signature's columns are unnamed", r)
			}
			for i, c := range cols {
				x, ok := v[c.Name]
				if !ok {
					return nil, fmt.Errorf("row %d has no %q", r, c.Name)
				}
				f, err := number(x)
				if err != nil {
					return nil, fmt.Errorf("row %d, %q: %v", r, c.Name, err)
				}
				row[i] = f
			}
		case []any:
			if columns != nil && len(v) != len(columns) {
				return nil, fmt.Errorf("row %d has %d values for %d columns", r, len(v), len(columns))
			}
			if pos == nil && len(v) != len(cols) {
				return nil, fmt.Errorf("row %d has %d values but the model takes %d", r, len(v), len(cols))
			}
			for i := range row {
				j := i
				if pos != nil {
					j = pos[i]
				}
				f, err := number(v[j])
				if err != nil {
					return nil, fmt.Errorf("row %d, value %d: %v", r, j, err)
				}
				row[i] = f
			}
		default:
			return nil, fmt.Errorf("row %d is neither a list nor a record", r)
		}
		out = append(out, row)
	}
	return out, nil
}

func number(x any) (float64, error) {
	switch v := x.(type) {
	case nil:
		return math.NaN(), nil
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case json.Number:
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil {
			return 0, fmt.Errorf("%s is not a number", v)
		}
		return f, nil
	case string:
		// pandas writes NaN as null; MLflow's own encoder may write "NaN".
		if v == "NaN" {
			return math.NaN(), nil
		}
		return 0, fmt.Errorf("%q is not a number", clip(v))
	}
	return 0, fmt.Errorf("%T is not a number", x)
}
