package workflows

import (
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Each step names its wave and, past a gate, who approved it: the sites'
// desired state records both (a GitOps commit message shows them).
func TestStepsCarryWaveAndApprover(t *testing.T) {
	h := newHarness(t, twoWaves+"approval: {after: [canary], timeout: 1h}\n", sites("c1"), sites("f1"))
	h.signal(40*time.Minute, modelfleet.SignalApprove, "alice")
	if st, err := h.run(); err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q, error %v", st.State, err)
	}
	for _, s := range h.steps {
		want, approver := "canary", ""
		if s.Sites[0] == "f1" {
			want, approver = "fleet", "alice"
		}
		if s.Wave != want || s.ApprovedBy != approver {
			t.Errorf("step to %v at %d%%: wave %q approver %q, want %q %q", s.Sites, s.New.Weight, s.Wave, s.ApprovedBy, want, approver)
		}
	}
}
