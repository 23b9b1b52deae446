package workflows

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// The inputs moved to wfapi carry the continued-run state as raw JSON.
// Recorded histories hold the JSON of the typed fields they replaced; both
// must encode, and decode, byte for byte the same.
func TestContinuedInputsKeepTheirJSON(t *testing.T) {
	margin := 0.01
	cp := Checkpoint{
		Status:     modelfleet.ReleaseStatus{Model: ref, State: modelfleet.StateDeploying, Sites: []modelfleet.SiteStatus{{Site: "s1", State: modelfleet.SiteHealthy}}},
		NewVersion: modelfleet.DesiredVersion{Version: "2", Digest: "sha256:ab<&>"},
		Wave:       1,
		Remaining:  []activities.PlannedSite{{ID: "s2"}},
		Touched:    [][]string{{"s1"}},
		Controls:   ControlState{Paused: true},
	}
	typedRelease := struct {
		Model      modelfleet.ModelRef `json:"model"`
		Tags       map[string]string   `json:"tags,omitempty"`
		Properties map[string]string   `json:"properties,omitempty"`
		EventID    string              `json:"eventId,omitempty"`
		Resume     *Checkpoint         `json:"resume,omitempty"`
	}{Model: ref, Tags: map[string]string{"a": "b"}, EventID: "e1", Resume: &cp}
	resume, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, typedRelease, modelfleet.ReleaseInput{Model: ref, Tags: map[string]string{"a": "b"}, EventID: "e1", Resume: resume})
	sameJSON(t, struct {
		Model  modelfleet.ModelRef `json:"model"`
		Resume *Checkpoint         `json:"resume,omitempty"`
	}{Model: ref}, modelfleet.ReleaseInput{Model: ref})

	st := RetrainState{
		Status:   RetrainStatus{Model: model, Stage: modelfleet.RetrainWaiting, Current: &RetrainCycle{Number: 1, Run: &activities.RunRef{ID: "r1"}}},
		Seen:     []string{"e1"},
		Deadline: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
	}
	typedRetrain := struct {
		Model    string        `json:"model"`
		Debounce time.Duration `json:"debounce,omitempty"`
		Margin   *float64      `json:"margin,omitempty"`
		State    *RetrainState `json:"state,omitempty"`
	}{Model: model, Debounce: time.Minute, Margin: &margin, State: &st}
	state, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, typedRetrain, modelfleet.RetrainInput{Model: model, Debounce: time.Minute, Margin: &margin, State: state})

	// And what a typed run wrote decodes into the raw field.
	b, _ := json.Marshal(typedRelease)
	var in modelfleet.ReleaseInput
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	got, err := decodeCheckpoint(in.Resume)
	if err != nil || got == nil || got.Wave != 1 || got.Remaining[0].ID != "s2" || !got.Controls.Paused {
		t.Errorf("decoded checkpoint = %+v, %v", got, err)
	}
}

func sameJSON(t *testing.T, typed, raw any) {
	t.Helper()
	a, err := json.Marshal(typed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("JSON changed:\nbefore %s\nnow    %s", a, b)
	}
}

func TestCorruptContinuedStateFailsClearly(t *testing.T) {
	env := newRetrainEnv(t)
	env.ExecuteWorkflow(modelfleet.RetrainWorkflowName, modelfleet.RetrainInput{Model: model, State: []byte(`{"status":"not an object"}`)})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), `decode the carried state (input field "state")`) {
		t.Errorf("workflow error = %v, want the state decode error", err)
	}
	if _, err := decodeCheckpoint([]byte(`[1]`)); err == nil {
		t.Error("decodeCheckpoint accepted an array")
	}
}
