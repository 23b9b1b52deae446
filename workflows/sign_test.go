package workflows

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// sign stands in for SignRelease: an envelope naming what it signed.
func (h *harness) sign(_ context.Context, req activities.SignRequest) (*modelfleet.Envelope, error) {
	h.signed = append(h.signed, req)
	return &modelfleet.Envelope{PayloadType: modelfleet.InTotoPayloadType, Payload: []byte(req.Report.Model.Digest)}, nil
}

func TestReleaseSignsTheValidatedVersionForEveryStep(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
	h.report.Model.Size = 1234
	st, err := h.run()
	if err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	if len(h.signed) != 1 {
		t.Fatalf("signed %d times, want once", len(h.signed))
	}
	if got, want := h.signed[0].Release, "release/bearing-failure/2"; got != want {
		t.Errorf("signed for release %q, want %q", got, want)
	}
	if !h.signed[0].Report.Result.Passed || h.signed[0].Report.Model.Digest != passed().Model.Digest {
		t.Errorf("signed %+v, want the passed validation report", h.signed[0].Report)
	}
	if !st.Signed {
		t.Error("status does not say the release is signed")
	}
	for _, s := range h.steps {
		if s.New.Statement == nil || string(s.New.Statement.Payload) != passed().Model.Digest || s.New.Size != 1234 {
			t.Fatalf("step %+v does not carry the signed statement and size", s.New)
		}
	}
}

func TestReleaseSignsNothingThatFailedValidation(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"))
	h.report.Result.Passed = false
	if _, err := h.run(); err == nil {
		t.Fatal("a failed validation released")
	}
	if len(h.signed) != 0 || len(h.steps) != 0 {
		t.Fatalf("signed %d, stepped %d after a failed validation", len(h.signed), len(h.steps))
	}
}

// A workload release signs its workload version once, after the plan, and
// every step carries the statement to the sites.
func TestWorkloadReleaseSignsItsWorkload(t *testing.T) {
	h := newWorkloadHarness(t, twoWaves, sites("c1"), sites("f1", "f2"))
	var signed []activities.WorkloadSignRequest
	h.env.OnActivity(cloud.SignWorkloadRelease, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.WorkloadSignRequest) (*modelfleet.Envelope, error) {
		signed = append(signed, req)
		return &modelfleet.Envelope{PayloadType: modelfleet.InTotoPayloadType, Payload: []byte(req.Workload.String())}, nil
	})
	h.env.ExecuteWorkflow(modelfleet.WorkloadReleaseWorkflowName, modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: modelfleet.WorkloadRef{Name: "bearing-failure-line", Version: "2"}})
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(signed) != 1 || signed[0].Release != line2ID || signed[0].Workload.Version != "2" {
		t.Fatalf("signed %+v, want the workload version once for %s", signed, line2ID)
	}
	if len(h.steps) == 0 {
		t.Fatal("no steps")
	}
	for _, s := range h.steps {
		if s.Statement == nil || string(s.Statement.Payload) != "bearing-failure-line:2" {
			t.Fatalf("step %+v does not carry the statement", s)
		}
	}
}
