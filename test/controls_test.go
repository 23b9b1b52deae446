package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApprovalAndRollback drives the controls through the CLI against the
// real stack: a release waits at its gate until approved (recording who and
// why); another is rolled back mid-rollout and its canary serves the
// previous version again.
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
	s.mustCLI("release", "approve", "press", "1", "--reason", "canary fine", "--as", "alice")
	waitState(t, s, "press", "1", "deploying")
	// Roll back while the fleet wave bakes: every touched site goes back.
	s.mustCLI("release", "rollback", "press", "1", "--reason", "odd scores", "--as", "bob")
	st := waitState(t, s, "press", "1", "rolled-back")
	controls := fmt.Sprint(st["controls"])
	if !strings.Contains(controls, "alice") || !strings.Contains(controls, "canary fine") || !strings.Contains(controls, "bob") {
		t.Errorf("controls = %s, want alice's approval and bob's rollback recorded", controls)
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
