package workflows

import (
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplay replays histories recorded from real runs of the embedded stack
// (`temporal workflow show -w release/<model>/<version> -o json`, and
// `-w retrain/<model>` for retrain_*.json, `-w
// release/<model>/workload/<name>/<version>` for workload_release_*.json). A
// change to Release, Retrain or WorkloadRelease
// that would break running workflows fails here: record a new history, and
// version the change with workflow.GetVersion.
//
// release_window_*.json were recorded with the bake-window analysis,
// per-step windows and the all-at-once rollback: after bearing-failure 1
// (the example's policy), version 2 under criteria {maxErrorRate,
// maxP99LatencyMs, minRequests} on the canary and a fleet wave of one site
// at a time (succeeded), version 3 with a fleet p99 threshold of 0.1 ms
// (breach, every site rolled back in one step).
//
// release_rollback_await_*.json were recorded by `go run ./bench/rollout
// -sites 20 -overhead-sites 0 -keep` (a release to 4 waves of 20 sites): a
// breach (the last wave's artifact refused after the gate) and a rejection
// at the gate, each rolling every touched site back with one
// RollbackAndAwait (release-rollback-await-in-one).
//
// release_signed_approve.json is a release started with control keys on a
// `temporal server start-dev` with stub activities (the gateway did not
// sign controls yet): a forged approve during the canary's bake and one at
// the gate, both refused, then a signed approve that passed the gate.
//
// release_signed_statement.json is a release of bearing-failure 7 on a
// `temporal server start-dev` with stub activities: validated, champion
// gate passed, the release statement signed (SignRelease) and carried by
// every step of a canary wave (50%, 100%) and a fleet wave.
// workload_release_signed.json, the same way: a workload-only release of
// bearing-failure-line 5 whose workload statement was signed after the plan
// and carried by the steps of both waves.
func TestReplay(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: modelfleet.ReleaseWorkflowName})
	r.RegisterWorkflowWithOptions(Retrain, workflow.RegisterOptions{Name: modelfleet.RetrainWorkflowName})
	r.RegisterWorkflowWithOptions(WorkloadRelease, workflow.RegisterOptions{Name: modelfleet.WorkloadReleaseWorkflowName})
	for _, pattern := range []string{"release_*.json", "retrain_*.json", "workload_release_*.json"} {
		files, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil || len(files) == 0 {
			t.Fatalf("no recorded histories %s in testdata (%v)", pattern, err)
		}
		for _, f := range files {
			t.Run(filepath.Base(f), func(t *testing.T) {
				if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
					t.Fatalf("replay %s: %v", f, err)
				}
			})
		}
	}
}
