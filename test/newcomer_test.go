package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNewcomerPath is the "done when": make run, register the example,
// the release validates and deploys to every site, every site scores with the
// new version, a second registration or a redelivered event starts nothing,
// and after a restart every site still serves its model.
func TestNewcomerPath(t *testing.T) {
	s := newStack(t)
	s.start()
	model := filepath.Join(repoRoot(t), "examples", "bearing-failure", "model.txt")

	out := s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "1", "--file", model)
	if !strings.Contains(string(out), "registered bearing-failure:1") {
		t.Fatalf("register output = %q", out)
	}
	st := s.waitSucceeded("bearing-failure", "1")
	v, _ := st["validation"].(map[string]any)
	if v["passed"] != true || v["metric"] != "auc" {
		t.Errorf("validation = %v, want a passed auc check", v)
	}
	sites, _ := st["sites"].([]any)
	if len(sites) != 3 {
		t.Fatalf("release sites = %v, want 3", sites)
	}
	for _, p := range s.sitePorts {
		res, err := s.score(p, "bearing-failure")
		if err != nil {
			t.Fatal(err)
		}
		if res["version"] != "1" || res["prediction"] == nil {
			t.Errorf("score at :%d = %v, want a prediction from version 1", p, res)
		}
	}

	// The shop floor: site-1's workload turns simulated sensor readings into
	// decisions through the model it now serves.
	waitFor(t, time.Minute, "site-1's workload to publish decisions", func() error {
		resp, err := http.Get(s.workloads[0] + "/decisions?limit=1")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var ds []map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&ds); err != nil || len(ds) == 0 || ds[0]["modelVersion"] != "1" {
			return fmt.Errorf("decisions: %v %v", ds, err)
		}
		return nil
	})

	// Registering the same version again starts nothing.
	out = s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "1", "--file", model)
	if !strings.Contains(string(out), "already registered") {
		t.Errorf("second register output = %q, want already registered", out)
	}
	// Nor does Event Grid redelivering the event (same subject, new id).
	for i := range 2 {
		body := fmt.Sprintf(`[{"id":"redelivery-%d","topic":"/subscriptions/x/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w","subject":"models/bearing-failure:1","eventType":"Microsoft.MachineLearningServices.ModelRegistered","eventTime":"2026-11-28T10:00:00Z","dataVersion":"2","metadataVersion":"1","data":{"modelName":"bearing-failure","modelVersion":"1"}}]`, i)
		resp, err := s.client().Post(s.gateway+"/api/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("redelivered event: %s, want 200", resp.Status)
		}
	}
	if n := s.countReleases("bearing-failure"); n != 1 {
		t.Errorf("releases of bearing-failure = %d, want 1", n)
	}

	// A version that misses its threshold is stopped before any site.
	s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "2", "--file", model, "--threshold", "0.999")
	waitFor(t, time.Minute, "release 2 to fail validation", func() error {
		st, err := s.releaseState("bearing-failure", "2")
		if err != nil {
			return err
		}
		if st["state"] != "failed" || !strings.Contains(fmt.Sprint(st["reason"]), "below the threshold") {
			return fmt.Errorf("state %v reason %v", st["state"], st["reason"])
		}
		return nil
	})
	if res, err := s.score(s.sitePorts[0], "bearing-failure"); err != nil || res["version"] != "1" {
		t.Errorf("after the failed release site-1 serves %v (%v), want version 1", res, err)
	}

	s.takeover(t)

	// Restart: every site serves its last good model again.
	s.stop()
	checkTrace(t, filepath.Join(s.dataDir, "traces.jsonl"))
	s.start()
	for _, p := range s.sitePorts {
		if res, err := s.score(p, "bearing-failure"); err != nil || res["version"] != "1" {
			t.Errorf("after restart, score at :%d = %v (%v), want version 1", p, res, err)
		}
	}
	var listed []struct {
		ID      string `json:"id"`
		Serving []struct{ Name, Version string }
	}
	if err := json.Unmarshal(s.mustCLI("site", "list", "--json"), &listed); err != nil {
		t.Fatal(err)
	}
	for _, site := range listed {
		if len(site.Serving) != 1 || site.Serving[0].Version != "1" {
			t.Errorf("site list after restart: %s serves %v, want bearing-failure:1", site.ID, site.Serving)
		}
	}
}

func (s *stack) countReleases(model string) int {
	s.t.Helper()
	var rs []map[string]any
	if err := json.Unmarshal(s.mustCLI("release", "list", "--json", "--model", model), &rs); err != nil {
		s.t.Fatal(err)
	}
	return len(rs)
}

// checkTrace asserts one trace runs from the webhook delivery through the
// release workflow to the apply at a site.
func checkTrace(t *testing.T, path string) {
	t.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("traces: %v", err)
	}
	names := map[string]map[string]bool{} // trace id -> span names
	dec := json.NewDecoder(bytes.NewReader(f))
	for {
		var span struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		if err := dec.Decode(&span); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("traces: %v", err)
		}
		if names[span.SpanContext.TraceID] == nil {
			names[span.SpanContext.TraceID] = map[string]bool{}
		}
		names[span.SpanContext.TraceID][span.Name] = true
	}
	for _, ns := range names {
		var webhook, workflow, activity bool
		for n := range ns {
			webhook = webhook || n == "eventgrid.delivery"
			workflow = workflow || n == "RunWorkflow:Release"
			activity = activity || n == "edge.apply"
		}
		if webhook && workflow && activity {
			return
		}
	}
	t.Errorf("no trace spans webhook -> RunWorkflow:Release -> edge.apply at a site; traces: %v", names)
}

// takeover replays what an attacker on the plant network with no
// credentials did before authentication existed (issue 12): each step is
// refused, nothing changes, and site-1 still serves its last good model.
func (s *stack) takeover(t *testing.T) {
	t.Helper()
	before := string(s.mustCLI("site", "list", "--json")) + string(s.mustCLI("policy", "show", "bearing-failure"))
	digest := "sha256:" + strings.Repeat("6", 64)
	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/api/policies/bearing-failure", "waves: [{name: all, bake: 1s}]"},
		{"POST", "/api/rollouts/step", `{"release":"release/bearing-failure/666","model":"bearing-failure","new":{"version":"666","url":"http://attacker/m","digest":"` + digest + `","weight":100},"sites":["site-1"]}`},
		{"PUT", "/api/sites/site-1/actual", `{"site":"site-1","revision":99,"models":{}}`},
		{"PUT", "/api/sites/site-1", `{"id":"site-1","taskQueue":"modelfleet-site-site-1","labels":{"ring":"canary","plant":"evil"}}`},
		{"POST", "/api/queues/signals/messages", `{"id":"forged","body":"e30="}`},
		{"POST", "/api/controls", `{"release":"release/bearing-failure/1","action":"rollback","reason":"x"}`},
	} {
		req, _ := http.NewRequest(step.method, s.gateway+step.path, strings.NewReader(step.body))
		resp, err := s.client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("takeover: %s %s answered %s %s, want 401", step.method, step.path, resp.Status, body)
		}
	}
	after := string(s.mustCLI("site", "list", "--json")) + string(s.mustCLI("policy", "show", "bearing-failure"))
	if stripSeen(before) != stripSeen(after) {
		t.Errorf("takeover changed the fleet:\nbefore %s\nafter  %s", before, after)
	}
	if res, err := s.score(s.sitePorts[0], "bearing-failure"); err != nil || res["version"] != "1" {
		t.Errorf("after the takeover attempt site-1 serves %v (%v), want version 1", res, err)
	}
}

// stripSeen drops the heartbeat stamps that move on their own.
func stripSeen(s string) string {
	return regexp.MustCompile(`"lastSeen":\s*"[^"]*"`).ReplaceAllString(s, "")
}
