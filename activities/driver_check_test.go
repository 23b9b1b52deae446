package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	mlfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers"
	"github.com/modelfleet/modelfleet/drivers/amlarc"
	"github.com/modelfleet/modelfleet/rollout"
)

// planFleet is a site directory for PlanRollout: sites, the default policy
// and each site's current desired state.
type planFleet struct {
	Fleet // the rollout calls PlanRollout never makes
	sites []modelfleet.Site

	mu      sync.Mutex
	desired map[string]modelfleet.Desired
	reads   int
	failOn  string
}

func (f *planFleet) List(context.Context) ([]modelfleet.Site, error) { return f.sites, nil }
func (f *planFleet) Policy(context.Context, string) (rollout.Policy, error) {
	return rollout.Default(), nil
}

func (f *planFleet) Desired(_ context.Context, site string, after int64, wait time.Duration) (modelfleet.Desired, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if after != -1 || wait != 0 {
		return modelfleet.Desired{}, fmt.Errorf("plan must read the current state, not long-poll (after=%d wait=%s)", after, wait)
	}
	if site == f.failOn {
		return modelfleet.Desired{}, errors.New("connection refused")
	}
	if d, ok := f.desired[site]; ok {
		return d, nil
	}
	return modelfleet.Desired{Site: site, Models: map[string]modelfleet.DesiredModel{}}, nil
}

// emptyWorkspace is the real amlarc driver against the SDK's fake ARM
// server for a workspace that holds no endpoints yet.
func emptyWorkspace(t *testing.T) *amlarc.Driver {
	t.Helper()
	srv := &mlfake.ServerFactory{OnlineEndpointsServer: mlfake.OnlineEndpointsServer{
		NewListPager: func(string, string, *ml.OnlineEndpointsClientListOptions) (resp azfake.PagerResponder[ml.OnlineEndpointsClientListResponse]) {
			resp.AddPage(http.StatusOK, ml.OnlineEndpointsClientListResponse{}, nil)
			return
		},
	}}
	d, err := amlarc.New(amlarc.Config{
		SubscriptionID: "00000000-0000-0000-0000-000000000000", ResourceGroup: "rg", Workspace: "ws", Location: "westeurope",
		Credential:    &azfake.TokenCredential{},
		ClientOptions: &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: mlfake.NewServerFactoryTransport(srv)}},
		EnvironmentID: "azureml:modelfleet-lightgbm:1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func arcSites(n int, cluster string) []modelfleet.Site {
	var ss []modelfleet.Site
	for i := range n {
		ss = append(ss, modelfleet.Site{ID: fmt.Sprintf("plant-%d", i), TaskQueue: "q", Driver: drivers.AMLArc, Labels: map[string]string{amlarc.ComputeLabel: cluster}})
	}
	return ss
}

func dv(version string) modelfleet.DesiredVersion {
	return modelfleet.DesiredVersion{Version: version, Digest: "sha256:" + strings.Repeat("b", 64), Format: "lightgbm", ArtifactURL: "https://example.invalid/" + version}
}

// mustRefuse checks err is the non-retryable "Invalid" failure the release
// workflow stops on, and that it names the limit.
func mustRefuse(t *testing.T, err error, limit string) {
	t.Helper()
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		t.Fatalf("plan accepted, want it refused naming %q", limit)
	case !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != "Invalid":
		t.Fatalf("plan error %v (%T) is not a non-retryable Invalid application error", err, err)
	case !strings.Contains(err.Error(), limit):
		t.Fatalf("plan error %q does not name %q", err, limit)
	}
}

func TestPlanRolloutChecksDriverLimits(t *testing.T) {
	ctx := context.Background()
	arc := emptyWorkspace(t)
	set := map[string]drivers.Driver{drivers.Agent: drivers.Nop{}, drivers.AMLArc: arc}
	nv := dv("7")

	t.Run("60 sites on one cluster fit", func(t *testing.T) {
		f := &planFleet{sites: arcSites(60, "line-1")}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{Drivers: set, Desired: f}}
		plan, err := a.PlanRollout(ctx, "bearing-failure", &nv)
		if err != nil {
			t.Fatalf("plan refused: %v", err)
		}
		if got, want := len(plan.Waves[1]), 60; got != want {
			t.Errorf("fleet wave has %d sites, want %d", got, want)
		}
		if got, want := f.reads, 60; got != want {
			t.Errorf("read %d desired states, want %d", got, want)
		}
	})
	t.Run("61 endpoints on one cluster", func(t *testing.T) {
		f := &planFleet{sites: arcSites(61, "line-1")}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{Drivers: set, Desired: f}}
		_, err := a.PlanRollout(ctx, "bearing-failure", &nv)
		mustRefuse(t, err, `"endpoints per cluster" (60)`)
	})
	t.Run("a 21st deployment on an endpoint", func(t *testing.T) {
		var serving []modelfleet.DesiredVersion
		for i := range 20 {
			serving = append(serving, dv(fmt.Sprint(100+i)))
		}
		site := arcSites(1, "line-1")
		f := &planFleet{sites: site, desired: map[string]modelfleet.Desired{site[0].ID: {
			Site: site[0].ID, Revision: 3, Models: map[string]modelfleet.DesiredModel{"bearing-failure": {Versions: serving}},
		}}}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{Drivers: set, Desired: f}}
		_, err := a.PlanRollout(ctx, "bearing-failure", &nv)
		mustRefuse(t, err, `"deployments per endpoint" (20)`)
		// Re-releasing a version the site already serves adds nothing.
		again := serving[5]
		if _, err := a.PlanRollout(ctx, "bearing-failure", &again); err != nil {
			t.Fatalf("re-release of a served version refused: %v", err)
		}
		// Another model is another endpoint.
		if _, err := a.PlanRollout(ctx, "vibration", &nv); err != nil {
			t.Fatalf("release of another model refused: %v", err)
		}
	})
	t.Run("a driver this worker has not configured", func(t *testing.T) {
		sites := append(arcSites(1, "line-1"), modelfleet.Site{ID: "git-site", TaskQueue: "q", Driver: drivers.GitOps})
		f := &planFleet{sites: sites}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{Drivers: set, Desired: f}}
		_, err := a.PlanRollout(ctx, "bearing-failure", &nv)
		mustRefuse(t, err, `site "git-site" uses driver "gitops", which this control plane has not configured`)
	})
	t.Run("no drivers configured: agent sites only", func(t *testing.T) {
		f := &planFleet{sites: []modelfleet.Site{{ID: "a1", TaskQueue: "q"}, {ID: "a2", TaskQueue: "q", Driver: drivers.Agent}}}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{}} // no drivers configured: the agent only
		if _, err := a.PlanRollout(ctx, "bearing-failure", &nv); err != nil {
			t.Fatalf("agent-only plan refused: %v", err)
		}
		if f.reads != 0 {
			t.Errorf("read %d desired states for agent sites, want none", f.reads)
		}
		f.sites = append(f.sites, arcSites(1, "line-1")...)
		_, err := a.PlanRollout(ctx, "bearing-failure", &nv)
		mustRefuse(t, err, `uses driver "amlarc", which this control plane has not configured`)
	})
	t.Run("a release workflow older than the check", func(t *testing.T) {
		f := &planFleet{sites: arcSites(61, "line-1")}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{Drivers: set, Desired: f}}
		if _, err := a.PlanRollout(ctx, "bearing-failure", nil); err != nil {
			t.Fatalf("plan without a version refused: %v", err)
		}
	})
	t.Run("an unreadable desired state is retried", func(t *testing.T) {
		f := &planFleet{sites: arcSites(30, "line-1"), failOn: "plant-17"}
		a := &Cloud{Fleet: f, Drivers: &drivers.Check{Drivers: set, Desired: f, Concurrency: 4}}
		_, err := a.PlanRollout(ctx, "bearing-failure", &nv)
		var appErr *temporal.ApplicationError
		if err == nil || errors.As(err, &appErr) || !strings.Contains(err.Error(), `site "plant-17"`) {
			t.Fatalf("plan error %v, want a plain (retryable) error naming the site", err)
		}
	})
}

var _ Fleet = (*planFleet)(nil)
