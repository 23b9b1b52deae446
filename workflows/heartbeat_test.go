package workflows

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

// requireHeartbeats fails t when an activity that may run longer than a
// minute starts without a heartbeat timeout of at most a minute: a worker
// killed mid-way would hold the workflow until the activity's whole
// start-to-close timeout ran out (chaos found a release in `validating`
// for minutes behind a ten-minute CheckChampion). The release and retrain
// harnesses install it, so every test run checks it.
func requireHeartbeats(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
	t.Helper()
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.Deadline.Sub(info.StartedTime) > time.Minute+time.Second && (info.HeartbeatTimeout <= 0 || info.HeartbeatTimeout > time.Minute) {
			t.Errorf("activity %s may run %s with heartbeat timeout %s: want a heartbeat timeout of at most a minute",
				info.ActivityType.Name, info.Deadline.Sub(info.StartedTime), info.HeartbeatTimeout)
		}
	})
}
