package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

const manifestYAML = `
apiVersion: modelfleet/v1
kind: Workload
name: line
version: "2"
model: m
input:
  topics: ["factory/{site}/+/telemetry"]
  fields: [{name: x, unit: mm/s, min: 0, max: 100}]
features: [{name: a}, {name: b, min: 0}]
window: {size: 4}
output: {decisions: "d/{site}", deadLetter: "dl/{site}"}
`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(manifestYAML))
	if err != nil {
		t.Fatal(err)
	}
	if m.Ref() != "line:2" || m.Input.MachineField != "machine" || time_(m.Input.MaxSkew) != DefaultMaxSkew ||
		*m.Output.Threshold != DefaultThreshold || m.Scaling.Workers != DefaultWorkers || Topic(m.Output.Decisions, "s1") != "d/s1" {
		t.Errorf("defaults not filled: %+v", m)
	}
	for _, c := range []struct{ edit, want string }{
		{"kind: Workload", "kind \"\""},
		{"window: {size: 4}", "window.size 0"},
		{`["factory/{site}/+/telemetry"]`, "input.topics are required"},
		{`"factory/{site}/+/telemetry"`, "'#' must be the last level"},
		{"{name: a}, {name: b, min: 0}", "features are required"},
		{"{name: b, min: 0}", `features must be unique and non-empty (got "a")`},
		{`"d/{site}"`, "must not contain wildcards"},
		{"model: m", "model name is required"},
		{"min: 0, max: 100", "min 0 is above max -1"},
	} {
		var yaml string
		switch c.want {
		case "'#' must be the last level":
			yaml = strings.Replace(manifestYAML, c.edit, `"factory/#/x"`, 1)
		case `features must be unique and non-empty (got "a")`:
			yaml = strings.Replace(manifestYAML, c.edit, "{name: a}", 1)
		case "must not contain wildcards":
			yaml = strings.Replace(manifestYAML, c.edit, `"d/+"`, 1)
		case "min 0 is above max -1":
			yaml = strings.Replace(manifestYAML, c.edit, "min: 0, max: -1", 1)
		default:
			yaml = strings.Replace(manifestYAML, c.edit, "", 1)
		}
		_, err := ParseManifest([]byte(yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("edit %q: error %v, want one containing %q", c.edit, err, c.want)
		}
	}
	if _, err := ParseManifest([]byte(manifestYAML + "treshold: 1\n")); err == nil || !strings.Contains(err.Error(), "treshold") {
		t.Errorf("unknown key accepted: %v", err)
	}
}

func time_(d Duration) time.Duration { return time.Duration(d) }

func TestCompatible(t *testing.T) {
	m, _ := ParseManifest([]byte(manifestYAML))
	if err := Compatible(m, []string{"b", "a"}); err != nil {
		t.Errorf("same features in another order: %v", err)
	}
	for _, c := range []struct {
		model []string
		want  []string
	}{
		{[]string{"a"}, []string{`the workload produces "b" that the model does not take`}},
		{[]string{"a", "b", "c"}, []string{`the model needs "c" that the workload does not produce`}},
		{[]string{"c"}, []string{`needs "c"`, `produces "a", "b"`}},
		{nil, []string{"declares no feature names"}},
	} {
		err := Compatible(m, c.model)
		var ie *IncompatibleError
		if !errors.As(err, &ie) || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Fatalf("%v: error %v (code %q)", c.model, err, modelfleet.ErrorCode(err))
		}
		msg := err.Error()
		if !strings.Contains(msg, `workload "line:2"`) || !strings.Contains(msg, `model "m"`) {
			t.Errorf("error does not name both sides: %s", msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q lacks %q", msg, w)
			}
		}
	}
	err := CheckRelease(m, modelfleet.ModelRef{Name: "m", Version: "3"}, []string{"a"})
	if err == nil || !strings.Contains(err.Error(), `model "m:3"`) {
		t.Errorf("CheckRelease: %v", err)
	}
	err = CheckRelease(m, modelfleet.ModelRef{Name: "other", Version: "1"}, []string{"a", "b"})
	if err == nil || !strings.Contains(err.Error(), `the workload calls model "m"`) {
		t.Errorf("CheckRelease of another model: %v", err)
	}
}

// CheckSchema names the first mismatch between a workload and a model
// artifact's own schema; unnamed artifacts are checked by count only.
func TestCheckSchema(t *testing.T) {
	m, err := ParseManifest([]byte(strings.Replace(manifestYAML, "{name: b, min: 0}", "{name: b, type: long, min: 0}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	ref := modelfleet.ModelRef{Name: "m", Version: "3"}
	col := func(spec string) Column {
		name, typ, _ := strings.Cut(spec, ":")
		return Column{Name: name, Type: typ}
	}
	cols := func(specs ...string) []Column {
		var out []Column
		for _, s := range specs {
			out = append(out, col(s))
		}
		return out
	}
	for _, c := range []struct {
		cols  []Column
		named bool
		want  string
	}{
		{cols("b:long", "a:double"), true, ""},
		{cols("a:", "b:integer"), true, ""},
		{cols("a:float", "b:double"), true, ""}, // a double feature takes whole numbers
		{cols("a:double", "b:long", "c:double"), true, `the model needs "c" that the workload does not produce`},
		{cols("a:double"), true, `the workload produces "b" that the model does not take`},
		{cols("a:double", "b:boolean"), true, `feature "b": the model takes boolean but the workload produces long`},
		{cols("f0:double", "f1:double"), false, ""},
		{cols("f0:", "f1:", "f2:"), false, "the model's file takes 3 features and the workload produces 2 (the file does not name its features, f0, f1, …, so only their number is checked)"},
	} {
		err := CheckSchema(m, ref, c.cols, c.named)
		if c.want == "" {
			if err != nil {
				t.Errorf("%v: %v", c.cols, err)
			}
			continue
		}
		var ie *IncompatibleError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `workload "line:2" is incompatible with model "m:3"`) {
			t.Errorf("%v: error %v, want %q naming both", c.cols, err, c.want)
		}
	}
	// A long model feature does not take a double one.
	d, _ := ParseManifest([]byte(strings.Replace(manifestYAML, "{name: b, min: 0}", "{name: b, type: double}", 1)))
	if err := CheckSchema(d, ref, cols("a:double", "b:long"), true); err == nil || !strings.Contains(err.Error(), "the model takes long but the workload produces double") {
		t.Errorf("double into long: %v", err)
	}
	if _, err := ParseManifest([]byte(strings.Replace(manifestYAML, "{name: b, min: 0}", "{name: b, type: string}", 1))); err == nil || !strings.Contains(err.Error(), `feature "b": type "string" is not supported`) {
		t.Errorf("string type: %v", err)
	}
	for _, c := range []struct {
		typ  string
		v    float64
		want bool
	}{{"long", 3, true}, {"long", 3.5, false}, {"integer", -2, true}, {"boolean", 1, true}, {"boolean", 2, false}, {"double", 0.1, true}, {"", 0.1, true}} {
		if got := (Feature{Type: c.typ}).Holds(c.v); got != c.want {
			t.Errorf("%s holds %v = %v", c.typ, c.v, got)
		}
	}
}
