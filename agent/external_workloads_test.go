package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// An agent whose site runs its workloads as processes of their own (the
// gitops driver's Deployments) does not report them failed for want of
// code; one that should host them does.
func TestExternalWorkloadsAreNotReportedFailed(t *testing.T) {
	ds := modelfleet.Desired{Site: "s1", Revision: 2, Workloads: map[string]modelfleet.DesiredWorkload{
		"bearing-failure-line": {Version: "2", Model: "bearing-failure"},
	}}
	var inAgent modelfleet.Actual
	(&Site{cfg: Config{SiteID: "s1"}}).convergeWorkloads(context.Background(), ds, &inAgent)
	if aw := inAgent.Workloads["bearing-failure-line"]; !strings.Contains(aw.Error, "no code for workload") {
		t.Fatalf("agent without the code reported %+v", inAgent.Workloads)
	}
	var external modelfleet.Actual
	(&Site{cfg: Config{SiteID: "s1", ExternalWorkloads: true}}).convergeWorkloads(context.Background(), ds, &external)
	if len(external.Workloads) != 0 {
		t.Fatalf("external workloads reported %+v", external.Workloads)
	}
}
