package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApprovalAndRollback drives the controls through the CLI against the
// real stack: a release waits at its gate through a forged approve sent
// straight to Temporal and an approver's out of scope, passes it when an
// approver in scope approves through the gateway (recording who, verified,
// and why), and is rolled back by the release manager mid-rollout.
func TestApprovalAndRollback(t *testing.T) {
	s := newStack(t)
	s.start()
	model := filepath.Join(repoRoot(t), "examples", "bearing-failure", "model.txt")
	policy := filepath.Join(t.TempDir(), "gated.yaml")
	if err := os.WriteFile(policy, []byte(`
waves:
  - {name: canary, select: {ring: canary}, steps: [50, 100], bake: 1s}
  - {name: fleet, bake: 30s}
approval: {after: [canary], timeout: 10m}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("model", "register", "--name", "press", "--version", "1", "--file", model, "--policy", policy)
	waitState(t, s, "press", "1", "awaiting-approval")

	// Forged: an approve signalled straight to Temporal, as anyone with the
	// Temporal UI or CLI could, carries no statement the gateway signed.
	out, err := exec.Command(filepath.Join(repoRoot(t), "bin", "tools", "temporal"), "workflow", "signal",
		"--address", s.temporal, "--workflow-id", "release/press/1", "--name", "approve",
		"--input", `{"by":"mallory","reason":"trust me"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("temporal workflow signal: %v: %s", err, out)
	}
	waitFor(t, 30*time.Second, "the forged approve to be recorded as refused", func() error {
		st, err := s.releaseState("press", "1")
		if err != nil {
			return err
		}
		if c := fmt.Sprint(st["controls"]); !strings.Contains(c, "mallory") || !strings.Contains(c, "refused") {
			return fmt.Errorf("controls %s", c)
		}
		if st["state"] != "awaiting-approval" {
			t.Fatalf("a forged approve moved the release on: state %v", st["state"])
		}
		return nil
	})
	// An approver scoped to plant-a may not let the fleet wave (plant-a
	// and plant-b sites) go.
	if out, err := s.cliAs("approver-plant-a.token", "release", "approve", "press", "1", "--reason", "looks fine"); err == nil || !strings.Contains(err.Error(), "scope") {
		t.Errorf("out-of-scope approve: %v %s", err, out)
	}
	// A viewer may not even ask.
	if _, err := s.cliAs("viewer.token", "release", "rollback", "press", "1", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "releases.control") {
		t.Errorf("a viewer's rollback: %v", err)
	}
	// The newcomer's identity is a fleet-wide approver: through the
	// gateway, signed, it passes.
	s.mustCLI("release", "approve", "press", "1", "--reason", "canary fine")
	waitState(t, s, "press", "1", "deploying")
	// Roll back while the fleet wave bakes, as the release manager.
	if out, err := s.cliAs("release-manager.token", "release", "rollback", "press", "1", "--reason", "odd scores"); err != nil {
		t.Fatalf("rollback: %v %s", err, out)
	}
	st := waitState(t, s, "press", "1", "rolled-back")
	controls := fmt.Sprint(st["controls"])
	if !strings.Contains(controls, "dev@modelfleet.local") || !strings.Contains(controls, "canary fine") || !strings.Contains(controls, "manager@modelfleet.local") || !strings.Contains(controls, "verified:true") {
		t.Errorf("controls = %s, want the verified approval and rollback recorded", controls)
	}
	// press:1 was the first version anywhere: rolling back means no site
	// serves press any more.
	for _, p := range s.sitePorts {
		if _, err := s.score(p, "press"); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("after rollback, score press at :%d = %v, want 404", p, err)
		}
	}
}

func waitState(t *testing.T, s *stack, model, version, state string) map[string]any {
	t.Helper()
	var st map[string]any
	waitFor(t, time.Minute, fmt.Sprintf("release %s:%s to be %s", model, version, state), func() error {
		var err error
		if st, err = s.releaseState(model, version); err != nil {
			return err
		}
		if st["state"] != state {
			return fmt.Errorf("state %v (reason %v)", st["state"], st["reason"])
		}
		return nil
	})
	return st
}
