package orchestratortest

import (
	"context"
	"errors"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// The fake keeps the contract's reuse rules and error codes, so callers'
// tests against it mean something.
func TestFakeKeepsTheContract(t *testing.T) {
	ctx := context.Background()
	f := &Fake{}
	code := func(err error, want string) {
		t.Helper()
		if got := modelfleet.ErrorCode(err); got != want {
			t.Errorf("error %v: code %q, want %q", err, got, want)
		}
	}
	ref := modelfleet.ModelRef{Name: "m", Version: "1"}
	run, err := f.StartRelease(ctx, modelfleet.ReleaseInput{Model: ref})
	if err != nil || run.WorkflowID != "release/m/1" || run.RunID == "" {
		t.Fatalf("start = %+v, %v", run, err)
	}
	if again, err := f.StartRelease(ctx, modelfleet.ReleaseInput{Model: ref}); err != nil || again != run {
		t.Errorf("restart while running = %+v, %v; want the running one", again, err)
	}
	f.Close(run.WorkflowID)
	_, err = f.StartRelease(ctx, modelfleet.ReleaseInput{Model: ref})
	code(err, modelfleet.ECONFLICT)
	_, err = f.StartRelease(ctx, modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: "../x", Version: "1"}})
	code(err, modelfleet.EINVALID)

	wl := modelfleet.WorkloadReleaseInput{Model: "m", Workload: modelfleet.WorkloadRef{Name: "line", Version: "2"}}
	if _, err := f.StartWorkloadRelease(ctx, wl); err != nil {
		t.Fatal(err)
	}
	_, err = f.StartWorkloadRelease(ctx, wl)
	code(err, modelfleet.ECONFLICT)
	f.Close("release/m/workload/line/2")
	if _, err := f.StartWorkloadRelease(ctx, wl); err != nil {
		t.Errorf("a closed workload release runs again: %v", err)
	}

	code(f.SignalRunStatus(ctx, modelfleet.RunStatus{Model: "m"}), modelfleet.ENOTFOUND)
	tr, err := f.TriggerRetrain(ctx, modelfleet.RetrainInput{}, modelfleet.RetrainTrigger{Model: "m"})
	if err != nil || tr.WorkflowID != "retrain/m" {
		t.Fatalf("trigger = %+v, %v", tr, err)
	}
	if again, err := f.TriggerRetrain(ctx, modelfleet.RetrainInput{}, modelfleet.RetrainTrigger{Model: "m"}); err != nil || again != tr {
		t.Errorf("second trigger = %+v, %v; want the running one", again, err)
	}
	if err := f.SignalRunStatus(ctx, modelfleet.RunStatus{Model: "m"}); err != nil {
		t.Error(err)
	}

	code(f.SignalControl(ctx, "release/m/1", modelfleet.SignalApprove, modelfleet.Control{}), modelfleet.ENOTFOUND)
	code(f.SignalControl(ctx, "release/m/1", "nope", modelfleet.Control{}), modelfleet.EINVALID)
	code(f.SignalVerdict(ctx, "release/m/1", modelfleet.MonitorVerdict{}), modelfleet.ENOTFOUND)
	f.SetRunning("release/m/1")
	if err := f.SignalControl(ctx, "release/m/1", modelfleet.SignalApprove, modelfleet.Control{}); err != nil {
		t.Error(err)
	}
	_, err = f.ReleaseStatus(ctx, "release/m/1")
	code(err, modelfleet.ENOTFOUND)

	down := errors.New("down")
	f.Errs = map[string]error{SignalVerdict: down}
	if err := f.SignalVerdict(ctx, "release/m/1", modelfleet.MonitorVerdict{}); !errors.Is(err, down) {
		t.Errorf("told to fail: %v", err)
	}
	if n := len(f.CallsTo(SignalVerdict)); n != 2 {
		t.Errorf("%d verdict calls recorded, want 2 (failed ones too)", n)
	}
	if n := len(f.Calls()); n != 17 {
		t.Errorf("%d calls recorded, want 17", n)
	}
}

// Like orchestrator.Temporal, the fake starts releases with its own keys.
func TestFakeStartsWithItsControlKeys(t *testing.T) {
	keys := []modelfleet.TrustedKey{{ID: "ed25519:gateway", PublicKey: make([]byte, 32)}}
	f := &Fake{ControlKeys: keys}
	ctx := context.Background()
	caller := []modelfleet.TrustedKey{{ID: "ed25519:caller"}}
	if _, err := f.StartRelease(ctx, modelfleet.ReleaseInput{Model: modelfleet.ModelRef{Name: "m", Version: "1"}, ControlKeys: caller}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.StartWorkloadRelease(ctx, modelfleet.WorkloadReleaseInput{Model: "m", Workload: modelfleet.WorkloadRef{Name: "line", Version: "2"}}); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if in := calls[0].Input.(modelfleet.ReleaseInput); len(in.ControlKeys) != 1 || in.ControlKeys[0].ID != "ed25519:gateway" {
		t.Errorf("release started with keys %v, want the fake's", in.ControlKeys)
	}
	if in := calls[1].Input.(modelfleet.WorkloadReleaseInput); len(in.ControlKeys) != 1 || in.ControlKeys[0].ID != "ed25519:gateway" {
		t.Errorf("workload release started with keys %v, want the fake's", in.ControlKeys)
	}
}
