package amlarc_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers"
	"github.com/modelfleet/modelfleet/drivers/amlarc"
	"github.com/modelfleet/modelfleet/internal/amlfake"
)

// The compile-time check lives in the external test package: drivers'
// factory imports amlarc, so amlarc cannot import drivers.
var _ drivers.Driver = (*amlarc.Driver)(nil)

const sub = amlfake.SubscriptionID

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func version(v string, c byte, w int) modelfleet.DesiredVersion {
	return modelfleet.DesiredVersion{Version: v, Digest: digest(c), Format: "lightgbm", ArtifactURL: "https://example.invalid/" + v, Weight: w}
}

func desired(site string, rev int64, models map[string][]modelfleet.DesiredVersion) modelfleet.Desired {
	ds := modelfleet.Desired{Site: site, Revision: rev, Models: map[string]modelfleet.DesiredModel{}}
	for m, vs := range models {
		ds.Models[m] = modelfleet.DesiredModel{Versions: vs, Release: "release/" + m + "/2"}
	}
	return ds
}

type harness struct {
	ws     *amlfake.Workspace
	d      *amlarc.Driver
	mu     sync.Mutex
	events []amlarc.Event
}

// newHarness wires the real clients to the fake servers; wrap, if set,
// sits between the SDK's pipeline and the fake (to inject raw responses).
func newHarness(t *testing.T, wrap func(policy.Transporter) policy.Transporter) *harness {
	t.Helper()
	h := &harness{ws: amlfake.New()}
	d, err := amlarc.New(amlarc.Config{
		SubscriptionID: sub, ResourceGroup: amlfake.ResourceGroup, Workspace: amlfake.Name, Location: "westeurope",
		Credential:    &azfake.TokenCredential{},
		ClientOptions: h.ws.ClientOptions(wrap),
		EnvironmentID: "azureml:modelfleet-lightgbm:1",
		PollFrequency: time.Millisecond,
		Progress: func(e amlarc.Event) {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

var site = modelfleet.Site{ID: "plant-a", TaskQueue: "q", Driver: "amlarc", Labels: map[string]string{amlarc.ComputeLabel: "arc-plant-a"}}

func TestReleaseLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	ep := amlarc.EndpointName(site.ID, "bearing-failure")
	v1, v2 := amlarc.DeploymentName("1", digest('a')), amlarc.DeploymentName("2", digest('b'))

	steps := []struct {
		vs          []modelfleet.DesiredVersion
		traffic     map[string]int32
		deployments []string
	}{
		{[]modelfleet.DesiredVersion{version("1", 'a', 100)}, map[string]int32{v1: 100}, []string{v1}},
		{[]modelfleet.DesiredVersion{version("2", 'b', 10), version("1", 'a', 90)}, map[string]int32{v1: 90, v2: 10}, []string{v1, v2}},
		{[]modelfleet.DesiredVersion{version("2", 'b', 50), version("1", 'a', 50)}, map[string]int32{v1: 50, v2: 50}, []string{v1, v2}},
		// Promotion: v1 leaves the desired state, so its deployment goes.
		{[]modelfleet.DesiredVersion{version("2", 'b', 100)}, map[string]int32{v2: 100}, []string{v2}},
	}
	for i, st := range steps {
		ds := desired(site.ID, int64(i+1), map[string][]modelfleet.DesiredVersion{"bearing-failure": st.vs})
		a, err := h.d.Apply(ctx, site, ds)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if a.Revision != ds.Revision || a.Models["bearing-failure"].Error != "" || len(a.Models["bearing-failure"].Versions) != len(st.vs) {
			t.Fatalf("step %d: actual %+v", i, a)
		}
		got := h.ws.Traffic(ep)
		for k, v := range st.traffic {
			if got[k] != v {
				t.Fatalf("step %d: traffic %v, want %v", i, got, st.traffic)
			}
		}
		names := h.ws.DeploymentNames(ep)
		slices.Sort(names)
		slices.Sort(st.deployments)
		if !slices.Equal(names, st.deployments) {
			t.Fatalf("step %d: deployments %v, want %v", i, names, st.deployments)
		}
	}
	// The endpoint is on the site's compute, with key auth.
	e, ok := h.ws.Endpoint(ep)
	if !ok {
		t.Fatalf("no endpoint %s", ep)
	}
	if !strings.HasSuffix(*e.Properties.Compute, "/workspaces/ws/computes/arc-plant-a") || string(*e.Properties.AuthMode) != "Key" {
		t.Fatalf("endpoint %+v", e.Properties)
	}
	// Applying the same state again changes nothing in Azure.
	puts := h.ws.Count("PUT")
	if _, err := h.d.Apply(ctx, site, desired(site.ID, 4, map[string][]modelfleet.DesiredVersion{"bearing-failure": steps[3].vs})); err != nil {
		t.Fatal(err)
	}
	if n := h.ws.Count("PUT"); n != puts {
		t.Fatalf("re-apply made %d PUTs", n-puts)
	}
	// Rollback to nothing served removes the endpoint.
	if _, err := h.d.Apply(ctx, site, desired(site.ID, 5, map[string][]modelfleet.DesiredVersion{"bearing-failure": nil})); err != nil {
		t.Fatal(err)
	}
	if h.ws.Traffic(ep) != nil {
		t.Fatal("endpoint still there after the model was withdrawn")
	}
	// Long-running operations were observed while they ran.
	var polling, done int
	for _, e := range h.events {
		switch e.Status {
		case "polling":
			polling++
		case "succeeded":
			done++
		}
	}
	if polling == 0 || done == 0 {
		t.Fatalf("progress events: %d polling, %d succeeded", polling, done)
	}
}

func TestConflictIsRetried(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	ds := desired(site.ID, 1, map[string][]modelfleet.DesiredVersion{"m": {version("1", 'a', 100)}})
	h.ws.FailNext("PUT deployment", http.StatusConflict) // another operation on it is under way
	if _, err := h.d.Apply(ctx, site, ds); err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("apply during a conflict: %v, want a retryable error naming 409", err)
	}
	a, err := h.d.Apply(ctx, site, ds)
	if err != nil || a.Models["m"].Error != "" {
		t.Fatalf("apply after the conflict: %v %+v", err, a)
	}
}

func TestThrottlingHonoursRetryAfter(t *testing.T) {
	// The first PUT of a deployment meets a 429 and Retry-After, as ARM
	// answers, before the request reaches the fake: what is tested is the
	// SDK's retry policy as the driver configures it.
	th := amlfake.NewThrottle(1, "1", func(req *http.Request) bool {
		return req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/deployments/")
	})
	h := newHarness(t, th.Wrap)
	a, err := h.d.Apply(context.Background(), site, desired(site.ID, 1, map[string][]modelfleet.DesiredVersion{"m": {version("1", 'a', 100)}}))
	if err != nil || a.Models["m"].Error != "" {
		t.Fatalf("apply: %v %+v", err, a)
	}
	seen := th.Seen()
	if len(seen) != 2 {
		t.Fatalf("%d PUTs of the deployment, want the throttled one and its retry", len(seen))
	}
	if gap := seen[1].Sub(seen[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v, want Retry-After's 1s", gap)
	}
}

func TestPollerFailureIsReportedNotRetried(t *testing.T) {
	h := newHarness(t, nil)
	bad := amlarc.DeploymentName("2", digest('b'))
	h.ws.FailProvisioning(bad)
	ds := desired(site.ID, 1, map[string][]modelfleet.DesiredVersion{
		"broken": {version("2", 'b', 100)},
		"fine":   {version("1", 'a', 100)},
	})
	a, err := h.d.Apply(context.Background(), site, ds)
	if err != nil {
		t.Fatalf("a deployment that failed to provision is the release's failure, not a retry: %v", err)
	}
	if e := a.Models["broken"].Error; !strings.Contains(e, "DeploymentReadinessProbeFailed") {
		t.Fatalf("broken model error %q", e)
	}
	if a.Models["fine"].Error != "" || len(a.Models["fine"].Versions) != 1 {
		t.Fatalf("the other model must still converge: %+v", a.Models["fine"])
	}
	// No traffic went to the failed deployment.
	if tr := h.ws.Traffic(amlarc.EndpointName(site.ID, "broken")); tr[bad] != 0 {
		t.Fatalf("traffic %v", tr)
	}
	var failed bool
	for _, e := range h.events {
		failed = failed || (e.Status == "failed" && strings.Contains(e.Resource, bad))
	}
	if !failed {
		t.Fatal("no failed progress event")
	}
}

func TestInvalidSplitIsPermanent(t *testing.T) {
	h := newHarness(t, nil)
	a, err := h.d.Apply(context.Background(), site, desired(site.ID, 1, map[string][]modelfleet.DesiredVersion{"m": {version("1", 'a', 60), version("2", 'b', 30)}}))
	if err != nil || !strings.Contains(a.Models["m"].Error, "sum to 90") {
		t.Fatalf("%v %+v", err, a)
	}
	if h.ws.Count("PUT") != 0 {
		t.Fatal("an invalid split reached Azure")
	}
}

func TestNamesFitAzureRules(t *testing.T) {
	sites := []string{"plant-a", "9-plant", "a", strings.Repeat("x", 255), "Plant_B.line.3"}
	models := []string{"bearing-failure", "m", "1model", strings.Repeat("m.o_d-e", 30)}
	versions := []string{"1", "2.0.1", "v_9", strings.Repeat("9", 200)}
	re := `^[A-Za-z](-?[A-Za-z0-9])*$`
	seen := map[string]bool{}
	for _, s := range sites {
		for _, m := range models {
			ep := amlarc.EndpointName(s, m)
			if seen[ep] {
				t.Fatalf("endpoint name %q collides", ep)
			}
			seen[ep] = true
			for _, v := range versions {
				dep := amlarc.DeploymentName(v, digest('c'))
				for _, n := range []string{ep, dep} {
					if len(n) < 3 || len(n) > 32 || !matches(re, n) {
						t.Fatalf("name %q breaks Azure's rule", n)
					}
				}
				if l := len(ep) + len(dep); l < 6 || l > 62 {
					t.Fatalf("%q + %q is %d characters", ep, dep, l)
				}
			}
		}
	}
}

func TestPlanLimits(t *testing.T) {
	ctx := context.Background()
	computeID := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/"
	mkSites := func(n int) []modelfleet.Site {
		var ss []modelfleet.Site
		for i := range n {
			ss = append(ss, modelfleet.Site{ID: fmt.Sprintf("site-%d", i), TaskQueue: "q", Driver: "amlarc"})
		}
		return ss
	}
	versions := func(n int) []modelfleet.DesiredVersion {
		var vs []modelfleet.DesiredVersion
		for i := range n {
			vs = append(vs, version(fmt.Sprint(i+1), 'a', 0))
		}
		return vs
	}
	peakOf := func(sites []modelfleet.Site, models, versionsPer int) map[string]modelfleet.Desired {
		p := map[string]modelfleet.Desired{}
		for _, s := range sites {
			ms := map[string][]modelfleet.DesiredVersion{}
			for m := range models {
				ms[fmt.Sprintf("model-%d", m)] = versions(versionsPer)
			}
			p[s.ID] = desired(s.ID, 1, ms)
		}
		return p
	}
	cases := []struct {
		name            string
		seed            func(*amlfake.Workspace)
		sites           int
		models, perEach int
		limit           string // "" = fits
	}{
		{"a normal release fits", nil, 10, 2, 2, ""},
		{"deployments per endpoint", nil, 1, 1, 21, "deployments per endpoint"},
		{"endpoints per cluster", nil, 1, 61, 1, "endpoints per cluster"},
		{"deployments per cluster", nil, 1, 6, 20, "deployments per cluster"},
		{"endpoints per region, counting other sites' endpoints", func(w *amlfake.Workspace) {
			for i := range 95 {
				seed(w, fmt.Sprintf("other%d", i), fmt.Sprintf("other-%d", i), computeID+"elsewhere", 1)
			}
		}, 6, 1, 2, "endpoints per subscription and region"},
		{"deployments per region", func(w *amlfake.Workspace) {
			for i := range 90 {
				seed(w, fmt.Sprintf("other%d", i), fmt.Sprintf("other-%d", i), computeID+"elsewhere", 5)
			}
		}, 3, 1, 20, "deployments per subscription and region"},
		{"a cluster shared with endpoints modelfleet did not make", func(w *amlfake.Workspace) {
			for i := range 58 {
				seed(w, fmt.Sprintf("manual%d", i), "", computeID+"site-0", 1)
			}
		}, 1, 3, 1, "endpoints per cluster"},
		{"the planned sites' own endpoints are not counted twice", func(w *amlfake.Workspace) {
			for i := range 99 {
				seed(w, fmt.Sprintf("mine%d", i), fmt.Sprintf("site-%d", i), computeID+fmt.Sprintf("site-%d", i), 1)
			}
		}, 99, 1, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			if c.seed != nil {
				c.seed(h.ws)
			}
			sites := mkSites(c.sites)
			err := h.d.Plan(ctx, sites, peakOf(sites, c.models, c.perEach))
			switch {
			case c.limit == "" && err != nil:
				t.Fatalf("plan refused: %v", err)
			case c.limit != "" && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.limit))):
				t.Fatalf("plan error %v, want one naming %q", err, c.limit)
			case c.limit != "" && modelfleet.ErrorCode(err) != modelfleet.EINVALID:
				t.Fatalf("plan error code %q, want invalid (not retryable)", modelfleet.ErrorCode(err))
			}
		})
	}
}

// seed adds an endpoint with n deployments that belongs to someone else.
func seed(w *amlfake.Workspace, name, site, compute string, n int) {
	w.PutEndpoint(ml.OnlineEndpoint{Name: to.Ptr(name), Tags: map[string]*string{"modelfleet.site": to.Ptr(site)},
		Properties: &ml.OnlineEndpointProperties{Compute: to.Ptr(compute), Traffic: map[string]*int32{}}})
	for i := range n {
		w.PutDeployment(name, ml.OnlineDeployment{Name: to.Ptr(fmt.Sprintf("d%d", i))})
	}
}
