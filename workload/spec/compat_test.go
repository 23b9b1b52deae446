package spec

import (
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func TestCheckUnits(t *testing.T) {
	w := Manifest{Name: "line", Version: "2", Model: "m", Features: []Feature{{Name: "t", Unit: "degC"}, {Name: "v", Unit: "mm/s"}, {Name: "s"}}}
	ref := modelfleet.ModelRef{Name: "m", Version: "3"}
	if err := CheckUnits(w, ref, map[string]string{"t": "degC", "s": "rpm", "other": "h"}); err != nil {
		t.Errorf("agreeing units, one declared on one side only: %v", err)
	}
	err := CheckUnits(w, ref, map[string]string{"t": "degF", "v": "in/s"})
	if err == nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), `feature "t": the workload produces degC, the model was trained on degF`) || !strings.Contains(err.Error(), `feature "v"`) {
		t.Errorf("two mismatches: %v", err)
	}
}
