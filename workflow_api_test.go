package modelfleet

import (
	"strings"
	"testing"
)

// Names recorded in workflow histories, on the Temporal server and in
// operators' scripts: a change here breaks running workflows and callers.
func TestRecordedNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{ReleaseWorkflowName, "Release"},
		{RetrainWorkflowName, "Retrain"},
		{StatusQuery, "status"},
		{RetrainTriggerSignal, "trigger"},
		{RunStatusSignal, "run-status"},
		{RetrainWorkflowID("bearing-failure"), "retrain/bearing-failure"},
		{RetrainRunTag, "modelfleet.retrain"},
		{SearchAttrModel, "ModelfleetModel"},
		{SearchAttrVersion, "ModelfleetVersion"},
		{SearchAttrStage, "ModelfleetStage"},
		{SearchAttrSites, "ModelfleetSite"},
		{WorkloadReleaseWorkflowName, "WorkloadRelease"},
		{SearchAttrWorkload, "ModelfleetWorkload"},
		{strings.Join(Signals, ","), "approve,reject,pause,resume,abort,rollback,skip-bake"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
