package amlarc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
)

// Tags on what the driver creates, so the plan can tell its endpoints from
// anyone else's and a deployment says which bytes it serves.
const (
	tagSite    = "modelfleet.site"
	tagModel   = "modelfleet.model"
	tagVersion = "modelfleet.version"
	tagDigest  = "modelfleet.digest"
)

// permanent marks a failure that retrying the same desired state cannot
// fix: it is reported in the model's Actual, not retried.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Apply converges every model of the site, in order: endpoint, then each
// version's deployment, then the traffic map, then deleting deployments no
// longer desired (Azure refuses to delete one that still has traffic, and a
// traffic map may only name deployments that exist). Models are independent:
// one failing does not stop the others.
func (d *Driver) Apply(ctx context.Context, site modelfleet.Site, ds modelfleet.Desired) (modelfleet.Actual, error) {
	actual := modelfleet.Actual{Site: site.ID, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{}}
	var retry error
	for _, model := range sortedModels(ds) {
		dm := ds.Models[model]
		err := d.applyModel(ctx, site, model, dm)
		var p permanent
		switch {
		case err == nil:
			am := modelfleet.ActualModel{Versions: []modelfleet.ServedVersion{}}
			for _, v := range dm.Versions {
				am.Versions = append(am.Versions, modelfleet.ServedVersion{Version: v.Version, Digest: v.Digest, Weight: v.Weight})
			}
			actual.Models[model] = am
		case errors.As(err, &p):
			actual.Models[model] = modelfleet.ActualModel{Versions: []modelfleet.ServedVersion{}, Error: err.Error()}
		default:
			retry = errors.Join(retry, fmt.Errorf("model %q: %w", model, err))
		}
	}
	if retry != nil {
		return actual, fmt.Errorf("amlarc: site %q: %w", site.ID, retry)
	}
	return actual, nil
}

func (d *Driver) applyModel(ctx context.Context, site modelfleet.Site, model string, dm modelfleet.DesiredModel) error {
	ep := EndpointName(site.ID, model)
	if len(dm.Versions) == 0 {
		return d.deleteEndpoint(ctx, site.ID, model, ep)
	}
	if err := modelfleet.ValidateSplit(dm.Versions); err != nil {
		return permanent{err}
	}
	traffic := map[string]*int32{}
	for _, v := range dm.Versions {
		dep := DeploymentName(v.Version, v.Digest)
		if err := checkNames(ep, dep); err != nil {
			return permanent{err}
		}
		traffic[dep] = to.Ptr(int32(v.Weight))
	}
	if err := checkTraffic(traffic); err != nil {
		return permanent{err}
	}
	// Like an agent, the driver deploys only what a trusted key signed,
	// every version checked before anything changes in Azure ML.
	if t := d.cfg.Trust; t != nil {
		for _, v := range dm.Versions {
			if _, err := t.VerifyRelease(v.Statement, model, v); err != nil {
				return permanent{err}
			}
		}
	}
	cur, err := d.ensureEndpoint(ctx, site, model, ep)
	if err != nil {
		return err
	}
	for _, v := range dm.Versions {
		if err := d.ensureDeployment(ctx, site, model, ep, v); err != nil {
			return err
		}
	}
	if !sameTraffic(cur.Properties.Traffic, traffic) {
		cur.Properties.Traffic = traffic
		if err := d.putEndpoint(ctx, site.ID, model, ep, cur); err != nil {
			return err
		}
	}
	return d.deleteSuperseded(ctx, site.ID, model, ep, traffic)
}

// checkTraffic enforces Azure's rule: an endpoint's traffic sums to 0 (a new
// endpoint) or 100.
func checkTraffic(t map[string]*int32) error {
	sum := int32(0)
	for _, w := range t {
		sum += *w
	}
	if sum != 0 && sum != 100 {
		return fmt.Errorf("amlarc: traffic sums to %d; Azure ML wants 0 or 100", sum)
	}
	return nil
}

func sameTraffic(a, b map[string]*int32) bool {
	nz := func(m map[string]*int32) map[string]int32 {
		out := map[string]int32{}
		for k, v := range m {
			if v != nil && *v != 0 {
				out[k] = *v
			}
		}
		return out
	}
	return maps.Equal(nz(a), nz(b))
}

// ensureEndpoint returns the endpoint, creating it (key auth, on the site's
// compute, no traffic yet) when it does not exist.
func (d *Driver) ensureEndpoint(ctx context.Context, site modelfleet.Site, model, ep string) (ml.OnlineEndpoint, error) {
	got, err := d.endpoints.Get(ctx, d.cfg.ResourceGroup, d.cfg.Workspace, ep, nil)
	if err == nil && got.Properties != nil {
		return got.OnlineEndpoint, nil
	}
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return ml.OnlineEndpoint{}, classify(err)
	}
	want := ml.OnlineEndpoint{
		Location: to.Ptr(d.cfg.Location),
		Tags:     map[string]*string{tagSite: to.Ptr(site.ID), tagModel: to.Ptr(model)},
		Properties: &ml.OnlineEndpointProperties{
			AuthMode:    to.Ptr(ml.EndpointAuthModeKey),
			Compute:     to.Ptr(d.computeID(computeOf(site))),
			Description: to.Ptr(fmt.Sprintf("modelfleet: model %s at site %s", model, site.ID)),
			Traffic:     map[string]*int32{},
		},
	}
	return want, d.putEndpoint(ctx, site.ID, model, ep, want)
}

func (d *Driver) putEndpoint(ctx context.Context, site, model, ep string, body ml.OnlineEndpoint) error {
	body.ID, body.Name, body.Type, body.SystemData = nil, nil, nil, nil // read-only
	if body.Properties != nil {
		body.Properties.ProvisioningState, body.Properties.ScoringURI, body.Properties.SwaggerURI = nil, nil, nil
		if err := checkTraffic(body.Properties.Traffic); err != nil {
			return permanent{err}
		}
	}
	p, err := d.endpoints.BeginCreateOrUpdate(ctx, d.cfg.ResourceGroup, d.cfg.Workspace, ep, body, nil)
	if err != nil {
		return classify(err)
	}
	_, err = wait(ctx, d, p, Event{Site: site, Model: model, Op: "put endpoint", Resource: ep})
	return err
}

// ensureDeployment creates the version's deployment unless one serving the
// same digest already succeeded.
func (d *Driver) ensureDeployment(ctx context.Context, site modelfleet.Site, model, ep string, v modelfleet.DesiredVersion) error {
	dep := DeploymentName(v.Version, v.Digest)
	got, err := d.deployments.Get(ctx, d.cfg.ResourceGroup, d.cfg.Workspace, ep, dep, nil)
	if err == nil && tag(got.Tags, tagDigest) == v.Digest && provisioned(got.OnlineDeployment) {
		return nil
	}
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return classify(err)
	}
	p, err := d.deployments.BeginCreateOrUpdate(ctx, d.cfg.ResourceGroup, d.cfg.Workspace, ep, dep, d.deployment(site, model, v), nil)
	if err != nil {
		return classify(err)
	}
	_, err = wait(ctx, d, p, Event{Site: site.ID, Model: model, Op: "put deployment", Resource: ep + "/" + dep})
	return err
}

func provisioned(dep ml.OnlineDeployment) bool {
	k, ok := dep.Properties.(*ml.KubernetesOnlineDeployment)
	return ok && k.ProvisioningState != nil && *k.ProvisioningState == ml.DeploymentProvisioningStateSucceeded
}

// deployment is one version as a KubernetesOnlineDeployment: probes on the
// scoring server, a bounded autoscaler, request limits.
func (d *Driver) deployment(site modelfleet.Site, model string, v modelfleet.DesiredVersion) ml.OnlineDeployment {
	probe := func(delay time.Duration) *ml.ProbeSettings {
		return &ml.ProbeSettings{InitialDelay: to.Ptr(iso(delay)), Period: to.Ptr("PT10S"), Timeout: to.Ptr("PT2S"), FailureThreshold: to.Ptr[int32](30), SuccessThreshold: to.Ptr[int32](1)}
	}
	props := &ml.KubernetesOnlineDeployment{
		EndpointComputeType: to.Ptr(ml.EndpointComputeTypeKubernetes),
		Description:         to.Ptr(fmt.Sprintf("modelfleet: %s version %s (%s)", model, v.Version, v.Digest)),
		Model:               to.Ptr(d.modelID(model, v)),
		EnvironmentID:       to.Ptr(d.cfg.EnvironmentID),
		InstanceType:        to.Ptr(d.cfg.InstanceType),
		LivenessProbe:       probe(10 * time.Second),
		ReadinessProbe:      probe(5 * time.Second),
		RequestSettings: &ml.OnlineRequestSettings{
			MaxConcurrentRequestsPerInstance: to.Ptr(d.cfg.MaxConcurrentRequests),
			RequestTimeout:                   to.Ptr(iso(d.cfg.RequestTimeout)),
		},
		ScaleSettings: &ml.TargetUtilizationScaleSettings{
			ScaleType:                   to.Ptr(ml.ScaleTypeTargetUtilization),
			MinInstances:                to.Ptr(d.cfg.MinInstances),
			MaxInstances:                to.Ptr(d.cfg.MaxInstances),
			TargetUtilizationPercentage: to.Ptr[int32](70),
			PollingInterval:             to.Ptr("PT10S"),
		},
		EnvironmentVariables: map[string]*string{"MODELFLEET_MODEL": to.Ptr(model), "MODELFLEET_VERSION": to.Ptr(v.Version), "MODELFLEET_DIGEST": to.Ptr(v.Digest)},
	}
	if v.Statement != nil {
		// The release statement travels with the deployment, for a scoring
		// script to verify the model it loads against (base64 DSSE JSON).
		if b, err := json.Marshal(v.Statement); err == nil {
			props.EnvironmentVariables["MODELFLEET_STATEMENT"] = to.Ptr(base64.StdEncoding.EncodeToString(b))
		}
	}
	if d.cfg.ScoringScript != "" {
		props.CodeConfiguration = &ml.CodeConfiguration{ScoringScript: to.Ptr(d.cfg.ScoringScript)}
		if d.cfg.CodeID != "" {
			props.CodeConfiguration.CodeID = to.Ptr(d.cfg.CodeID)
		}
	}
	return ml.OnlineDeployment{
		Location:   to.Ptr(d.cfg.Location),
		Tags:       map[string]*string{tagSite: to.Ptr(site.ID), tagModel: to.Ptr(model), tagVersion: to.Ptr(v.Version), tagDigest: to.Ptr(v.Digest)},
		Properties: props,
	}
}

// deleteSuperseded removes the endpoint's deployments that the traffic map
// no longer names: after a promotion, the old version.
func (d *Driver) deleteSuperseded(ctx context.Context, site, model, ep string, keep map[string]*int32) error {
	pager := d.deployments.NewListPager(d.cfg.ResourceGroup, d.cfg.Workspace, ep, nil)
	var stale []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		for _, dep := range page.Value {
			if dep != nil && dep.Name != nil && keep[*dep.Name] == nil {
				stale = append(stale, *dep.Name)
			}
		}
	}
	for _, dep := range stale {
		p, err := d.deployments.BeginDelete(ctx, d.cfg.ResourceGroup, d.cfg.Workspace, ep, dep, nil)
		if isStatus(err, http.StatusNotFound) {
			continue
		}
		if err != nil {
			return classify(err)
		}
		if _, err := wait(ctx, d, p, Event{Site: site, Model: model, Op: "delete deployment", Resource: ep + "/" + dep}); err != nil {
			return err
		}
	}
	return nil
}

// deleteEndpoint removes a model the site no longer serves (its deployments go with it).
func (d *Driver) deleteEndpoint(ctx context.Context, site, model, ep string) error {
	p, err := d.endpoints.BeginDelete(ctx, d.cfg.ResourceGroup, d.cfg.Workspace, ep, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return classify(err)
	}
	_, err = wait(ctx, d, p, Event{Site: site, Model: model, Op: "delete endpoint", Resource: ep})
	return err
}

func tag(tags map[string]*string, k string) string {
	if v := tags[k]; v != nil {
		return *v
	}
	return ""
}

func isStatus(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// classify decides whether a failed request is worth retrying: throttling
// (429, already retried by the SDK honouring Retry-After), conflicts (409:
// another operation on the resource is under way), server errors and
// transport failures are; anything else is the request's own fault.
func classify(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.StatusCode == http.StatusConflict, re.StatusCode == http.StatusTooManyRequests, re.StatusCode >= 500:
		return err
	default:
		return permanent{err}
	}
}

// iso formats d as an ISO 8601 duration, as ARM wants them.
func iso(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("PT%.3fS", d.Seconds())
	}
	return fmt.Sprintf("PT%dS", int64(d/time.Second))
}
