package inference

import (
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

var schema = []string{"temperature_c", "speed_rpm", "features"}

func TestVector(t *testing.T) {
	want := []float64{61.5, 1485, -2e-3}
	for _, c := range []struct {
		name, body string
		features   []string
	}{
		{"wrapped object", `{"features": {"temperature_c": 61.5, "speed_rpm": 1485, "features": -2e-3}}`, schema},
		{"any order", `{"features": {"features": -0.002, "speed_rpm": 1485, "temperature_c": 61.5}}`, schema},
		{"bare object", `{"temperature_c": 61.5, "speed_rpm": 1.485E3, "features": -2e-3}`, schema},
		{"wrapped array", ` {"features" : [ 61.5 , 1485 , -2e-3 ] } `, schema},
		{"bare array", "[61.5,1485,-0.002]\n", schema},
		{"array without schema", `[61.5, 1485, -2e-3]`, nil},
		{"wrapped array without schema", `{"features": [61.5, 1485, -2e-3]}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Vector(c.features, []byte(c.body))
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("Vector = %v, %v; want %v", got, err, want)
			}
		})
	}
}

func TestVectorErrors(t *testing.T) {
	for _, c := range []struct {
		name, body string
		features   []string
		want       string
	}{
		{"empty", "  ", schema, "request body is empty"},
		{"not json", "temperature_c=61", schema, "not valid JSON"},
		{"trailing garbage", `[1, 2, 3] x`, schema, "not valid JSON"},
		{"two values", `[1, 2, 3] [4]`, schema, "not valid JSON"},
		{"scalar", `42`, schema, "got a number"},
		{"string body", `"hi"`, schema, "got a string"},
		{"missing", `{"temperature_c": 1, "features": 3}`, schema, `missing feature "speed_rpm"`},
		{"unknown", `{"temperature_c": 1, "speed_rpm": 2, "features": 3, "humidity": 4}`, schema, `unknown feature "humidity"`},
		{"duplicate", `{"temperature_c": 1, "temperature_c": 2}`, schema, `duplicate field "temperature_c"`},
		{"string value", `{"features": {"temperature_c": "61", "speed_rpm": 2, "features": 3}}`, schema, `feature "temperature_c" must be a number, got a string`},
		{"null value", `{"temperature_c": null}`, schema, `feature "temperature_c" must be a number, got null`},
		{"bool in array", `[1, true, 3]`, schema, `feature "speed_rpm" must be a number, got a boolean`},
		{"object in array", `[1, 2, {}]`, nil, `feature at index 2 must be a number, got an object`},
		{"overflow", `[1, 2, 1e999]`, schema, `feature "features": 1e999 is out of range`},
		{"short array", `[1, 2]`, schema, "got 2 features, want 3"},
		{"long array", `{"features": [1, 2, 3, 4]}`, schema, "got 4 features, want 3"},
		{"beside wrapper", `{"features": {"temperature_c": 1}, "id": "a"}`, schema, `unexpected field "id" beside "features"`},
		{"nested wrapper", `{"features": {"features": {"temperature_c": 1}}}`, schema, `feature "features" must be a number, got an object`},
		{"object without schema", `{"temperature_c": 1}`, nil, "declares no feature names"},
		{"wrapped string", `{"features": "x"}`, nil, "declares no feature names"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Vector(c.features, []byte(c.body))
			if err == nil {
				t.Fatalf("Vector = %v, want error", got)
			}
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q (code %s), want an invalid error containing %q", err, modelfleet.ErrorCode(err), c.want)
			}
		})
	}
}

// TestVectorFastReadsWhatClientsSend: the score requests clients send take
// the one-pass reader, allocating only the row.
func TestVectorFastReadsWhatClientsSend(t *testing.T) {
	for _, body := range []string{
		`{"features": {"temperature_c": 61.5, "speed_rpm": 1485, "features": -2e-3}}`,
		`{"speed_rpm": 1485, "features": -2e-3, "temperature_c": 61.5}`,
		`{"features": [61.5, 1485, -2e-3]}`, ` [61.5,1485,-0.002] `,
	} {
		row, ok := vectorFast(schema, []byte(body))
		if !ok || row[0] != 61.5 || row[1] != 1485 || row[2] != -2e-3 {
			t.Errorf("%s: fast reader %v, %v", body, row, ok)
		}
		b := []byte(body)
		if n := testing.AllocsPerRun(100, func() { _, _ = Vector(schema, b) }); n > 1 {
			t.Errorf("%s: %v allocations, want 1 (the row)", body, n)
		}
	}
}
