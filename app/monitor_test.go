package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// What the drift monitor's verdicts become: a verdict signal to the
// version's release and to the release holding the site's lease, if they
// run, and a retraining trigger when it drifted.
func TestVerdictSink(t *testing.T) {
	const holder = "release/m/workload/line/2"
	dir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/sites/s1/desired" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(modelfleet.Desired{Site: "s1", Models: map[string]modelfleet.DesiredModel{"m": {Release: holder}}})
	}))
	defer dir.Close()
	end := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	verdict := func(site string, dataDrift, quality bool) drift.Verdict {
		return drift.Verdict{ID: "drift/" + site + "/m/3/1", Site: site, Model: "m", Version: "3", WindowEnd: end, Reason: " psi x1 ",
			DataDrift: dataDrift, QualityBreached: quality,
			Features: []drift.FeatureVerdict{{Name: "a", Value: 0.2}, {Name: "b", Value: 0.4}}}
	}
	sink := func(f *orchestratortest.Fake) *verdictSink {
		return &verdictSink{o: f, dir: &fleet.Client{BaseURL: dir.URL}, retrain: modelfleet.RetrainInput{Debounce: time.Minute},
			log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	ctx := context.Background()

	t.Run("drift", func(t *testing.T) {
		f := &orchestratortest.Fake{}
		f.SetRunning("release/m/3") // the lease holder does not run: nobody to tell
		if err := sink(f).Notify(ctx, verdict("s1", true, false)); err != nil {
			t.Fatal(err)
		}
		calls := f.Calls()
		if len(calls) != 3 {
			t.Fatalf("calls = %+v, want two verdicts and a trigger", calls)
		}
		for i, id := range []string{"release/m/3", holder} {
			c := calls[i]
			v, _ := c.Payload.(modelfleet.MonitorVerdict)
			if c.Method != orchestratortest.SignalVerdict || c.WorkflowID != id || v.ID != "drift/s1/m/3/1" || v.Site != "s1" || v.Version != "3" || !v.DataDrift {
				t.Errorf("call %d = %+v, want the verdict to %s", i, c, id)
			}
		}
		c := calls[2]
		tr, _ := c.Payload.(modelfleet.RetrainTrigger)
		want := modelfleet.RetrainTrigger{Reason: modelfleet.ReasonEdgeDrift, Source: "modelfleet-monitor/s1", EventID: "drift/s1/m/3/1", Model: "m",
			DriftCoefficient: 0.4, Monitor: "psi x1", Time: end}
		if c.Method != orchestratortest.TriggerRetrain || tr != want || c.Input.(modelfleet.RetrainInput).Debounce != time.Minute {
			t.Errorf("call = %+v, want the trigger %+v", c, want)
		}
	})

	t.Run("quality only", func(t *testing.T) {
		f := &orchestratortest.Fake{}
		if err := sink(f).Notify(ctx, verdict("s2", false, true)); err != nil { // s2: the directory knows no lease
			t.Fatal(err)
		}
		if calls := f.Calls(); len(calls) != 1 || calls[0].Method != orchestratortest.SignalVerdict || calls[0].WorkflowID != "release/m/3" {
			t.Errorf("calls = %+v, want the verdict to the version's release only", calls)
		}
	})

	t.Run("within thresholds", func(t *testing.T) {
		f := &orchestratortest.Fake{}
		if err := sink(f).Notify(ctx, verdict("s1", false, false)); err != nil || len(f.Calls()) != 0 {
			t.Errorf("Notify = %v with calls %+v, want nothing", err, f.Calls())
		}
	})

	// A transient failure is the monitor's to retry: the verdict ID makes
	// the repeat harmless.
	down := errors.New("down")
	for _, method := range []string{orchestratortest.SignalVerdict, orchestratortest.TriggerRetrain} {
		t.Run(method+" fails", func(t *testing.T) {
			f := &orchestratortest.Fake{Errs: map[string]error{method: down}}
			if err := sink(f).Notify(ctx, verdict("s1", true, false)); !errors.Is(err, down) {
				t.Errorf("Notify = %v, want %v", err, down)
			}
		})
	}
}
