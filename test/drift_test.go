package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDriftStartsRetraining closes the monitoring loop end to end: the
// sites' routers count what the simulated lines send, the agents ship a
// signal message per window over the embedded queue, the monitor compares
// each site with its own first half-window, and a drifted line starts the
// model's retraining workflow — the path `modelfleet simulate drift` demos.
func TestDriftStartsRetraining(t *testing.T) {
	s := newStack(t)
	// Short windows so the loop turns within the test: 2 s signal windows,
	// a two-minute lookback (the reference is the first minute), 600 rows.
	s.extra = []string{"--signal-interval", "2s", "--monitor-lookback", "120s", "--monitor-min-rows", "600", "--retrain-debounce", "10m"}
	s.start()
	model := filepath.Join(repoRoot(t), "examples", "bearing-failure", "model.txt")
	s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "1", "--file", model)
	s.waitSucceeded("bearing-failure", "1")

	// Undrifted lines: verdicts arrive and none drifts. (Data-quality
	// breaches may: a worn bearing vibrates beyond what training saw.)
	waitFor(t, 3*time.Minute, "every site to have a verdict past its reference", func() error {
		rep, err := s.monitor()
		if err != nil {
			return err
		}
		ok := map[string]bool{}
		for _, v := range rep.Verdicts {
			if v.DataDrift || v.PredDrift {
				return fmt.Errorf("site %s drifted without drift: %s", v.Site, v.Reason)
			}
			if !v.Insufficient && len(v.Features) == 6 {
				ok[v.Site] = true
			}
		}
		if len(ok) != 3 {
			return fmt.Errorf("sites past their reference: %v (stats %+v)", ok, rep.Stats)
		}
		return nil
	})
	if out, err := s.retrainStatus(); err == nil {
		t.Fatalf("retraining started with no drift: %s", out)
	}

	// site-1's line drifts: hotter, more loaded, more vibration.
	s.mustCLI("simulate", "drift", "--site", "site-1", "--model", "bearing-failure", "--shift", "2",
		"--simulator-url", s.simulators[0])
	waitFor(t, 90*time.Second, "site-1's drift to start retraining", func() error {
		out, err := s.retrainStatus()
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), `"edge-drift"`) {
			return fmt.Errorf("retrain status without an edge-drift trigger: %s", out)
		}
		return nil
	})
	rep, err := s.monitor()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Verdicts {
		if v.Site == "site-1" && !v.DataDrift {
			t.Errorf("site-1's verdict %+v, want data drift", v)
		}
		if v.Site != "site-1" && (v.DataDrift || v.PredDrift) {
			t.Errorf("site %s drifted though only site-1's line did: %s", v.Site, v.Reason)
		}
	}
}

type monitorReport struct {
	Stats    map[string]int64 `json:"stats"`
	Verdicts []struct {
		Site         string `json:"site"`
		Insufficient bool   `json:"insufficient"`
		DataDrift    bool   `json:"dataDrift"`
		Reason       string `json:"reason"`
		Features     []any  `json:"features"`
		PredDrift    bool   `json:"predictionDrift"`
	} `json:"verdicts"`
}

func (s *stack) monitor() (monitorReport, error) {
	var rep monitorReport
	out, err := s.cli("monitor", "status", "--json")
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// retrainStatus queries retrain/bearing-failure with the Temporal CLI.
func (s *stack) retrainStatus() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(repoRoot(s.t), "bin", "tools", "temporal"), "workflow", "query",
		"--address", s.temporal, "--workflow-id", "retrain/bearing-failure", "--type", "status", "-o", "json").CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, out)
	}
	return out, nil
}
