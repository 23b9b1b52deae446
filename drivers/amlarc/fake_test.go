package amlarc_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"
)

// workspace is a stateful Azure ML workspace behind the SDK's generated fake
// servers: the real clients, pipeline, retry policy and pollers run against
// it. It enforces the rules of the real service that the driver relies on
// (traffic sums to 0 or 100 and names existing deployments; a deployment
// with traffic cannot be deleted; a deployment needs its endpoint).
type workspace struct {
	mu          sync.Mutex
	endpoints   map[string]ml.OnlineEndpoint
	deployments map[string]map[string]ml.OnlineDeployment
	calls       []string // "PUT endpoint e1", "DELETE deployment e1/v1-..."
	// failNext, keyed by "op name", answers the next such call with an HTTP
	// status and error code instead (409 conflicts and the like).
	failNext map[string]int
	// failPoll makes the long-running PUT of a deployment end in failure.
	failPoll map[string]bool
}

func newWorkspace() *workspace {
	return &workspace{endpoints: map[string]ml.OnlineEndpoint{}, deployments: map[string]map[string]ml.OnlineDeployment{}, failNext: map[string]int{}, failPoll: map[string]bool{}}
}

func (w *workspace) record(call string) (status int) {
	w.calls = append(w.calls, call)
	for k, s := range w.failNext {
		if strings.HasPrefix(call, k) {
			delete(w.failNext, k)
			return s
		}
	}
	return 0
}

func (w *workspace) server() *fake.ServerFactory {
	return &fake.ServerFactory{OnlineEndpointsServer: w.endpointsServer(), OnlineDeploymentsServer: w.deploymentsServer()}
}

func (w *workspace) endpointsServer() fake.OnlineEndpointsServer {
	return fake.OnlineEndpointsServer{
		Get: func(_ context.Context, _, _, name string, _ *ml.OnlineEndpointsClientGetOptions) (resp azfake.Responder[ml.OnlineEndpointsClientGetResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			ep, ok := w.endpoints[name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, ml.OnlineEndpointsClientGetResponse{OnlineEndpoint: ep}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, _, _, name string, body ml.OnlineEndpoint, _ *ml.OnlineEndpointsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[ml.OnlineEndpointsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if s := w.record("PUT endpoint " + name); s != 0 {
				errResp.SetResponseError(s, http.StatusText(s))
				return
			}
			sum := int32(0)
			for dep, v := range body.Properties.Traffic {
				if _, ok := w.deployments[name][dep]; !ok {
					errResp.SetResponseError(http.StatusBadRequest, "TrafficNamesMissingDeployment")
					return
				}
				sum += *v
			}
			if sum != 0 && sum != 100 {
				errResp.SetResponseError(http.StatusBadRequest, "InvalidTrafficSum")
				return
			}
			body.Name = to.Ptr(name)
			body.Properties.ProvisioningState = to.Ptr(ml.EndpointProvisioningStateSucceeded)
			w.endpoints[name] = body
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			resp.SetTerminalResponse(http.StatusOK, ml.OnlineEndpointsClientCreateOrUpdateResponse{OnlineEndpoint: body}, nil)
			return
		},
		BeginDelete: func(_ context.Context, _, _, name string, _ *ml.OnlineEndpointsClientBeginDeleteOptions) (resp azfake.PollerResponder[ml.OnlineEndpointsClientDeleteResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if s := w.record("DELETE endpoint " + name); s != 0 {
				errResp.SetResponseError(s, http.StatusText(s))
				return
			}
			if _, ok := w.endpoints[name]; !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			delete(w.endpoints, name)
			delete(w.deployments, name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, ml.OnlineEndpointsClientDeleteResponse{}, nil)
			return
		},
		NewListPager: func(_, _ string, _ *ml.OnlineEndpointsClientListOptions) (resp azfake.PagerResponder[ml.OnlineEndpointsClientListResponse]) {
			w.mu.Lock()
			defer w.mu.Unlock()
			var all []*ml.OnlineEndpoint
			for _, ep := range w.endpoints {
				all = append(all, to.Ptr(ep))
			}
			// Two pages when there is enough, so paging is exercised.
			half := len(all) / 2
			if half > 0 {
				resp.AddPage(http.StatusOK, ml.OnlineEndpointsClientListResponse{OnlineEndpointTrackedResourceArmPaginatedResult: ml.OnlineEndpointTrackedResourceArmPaginatedResult{Value: all[:half]}}, nil)
			}
			resp.AddPage(http.StatusOK, ml.OnlineEndpointsClientListResponse{OnlineEndpointTrackedResourceArmPaginatedResult: ml.OnlineEndpointTrackedResourceArmPaginatedResult{Value: all[half:]}}, nil)
			return
		},
	}
}

func (w *workspace) deploymentsServer() fake.OnlineDeploymentsServer {
	return fake.OnlineDeploymentsServer{
		Get: func(_ context.Context, _, _, ep, name string, _ *ml.OnlineDeploymentsClientGetOptions) (resp azfake.Responder[ml.OnlineDeploymentsClientGetResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			dep, ok := w.deployments[ep][name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, ml.OnlineDeploymentsClientGetResponse{OnlineDeployment: dep}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, _, _, ep, name string, body ml.OnlineDeployment, _ *ml.OnlineDeploymentsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[ml.OnlineDeploymentsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if s := w.record("PUT deployment " + ep + "/" + name); s != 0 {
				errResp.SetResponseError(s, http.StatusText(s))
				return
			}
			if _, ok := w.endpoints[ep]; !ok {
				errResp.SetResponseError(http.StatusNotFound, "EndpointNotFound")
				return
			}
			k, ok := body.Properties.(*ml.KubernetesOnlineDeployment)
			if !ok || k.EndpointComputeType == nil || *k.EndpointComputeType != ml.EndpointComputeTypeKubernetes {
				errResp.SetResponseError(http.StatusBadRequest, "NotKubernetes")
				return
			}
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			resp.AddNonTerminalResponse(http.StatusOK, nil)
			if w.failPoll[name] {
				k.ProvisioningState = to.Ptr(ml.DeploymentProvisioningStateFailed)
				resp.SetTerminalError(http.StatusBadRequest, "DeploymentReadinessProbeFailed")
			} else {
				k.ProvisioningState = to.Ptr(ml.DeploymentProvisioningStateSucceeded)
				resp.SetTerminalResponse(http.StatusOK, ml.OnlineDeploymentsClientCreateOrUpdateResponse{OnlineDeployment: body}, nil)
			}
			body.Name = to.Ptr(name)
			if w.deployments[ep] == nil {
				w.deployments[ep] = map[string]ml.OnlineDeployment{}
			}
			w.deployments[ep][name] = body
			return
		},
		BeginDelete: func(_ context.Context, _, _, ep, name string, _ *ml.OnlineDeploymentsClientBeginDeleteOptions) (resp azfake.PollerResponder[ml.OnlineDeploymentsClientDeleteResponse], errResp azfake.ErrorResponder) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if s := w.record("DELETE deployment " + ep + "/" + name); s != 0 {
				errResp.SetResponseError(s, http.StatusText(s))
				return
			}
			if _, ok := w.deployments[ep][name]; !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if t := w.endpoints[ep].Properties.Traffic[name]; t != nil && *t > 0 {
				errResp.SetResponseError(http.StatusBadRequest, "DeploymentHasTraffic")
				return
			}
			delete(w.deployments[ep], name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, ml.OnlineDeploymentsClientDeleteResponse{}, nil)
			return
		},
		NewListPager: func(_, _, ep string, _ *ml.OnlineDeploymentsClientListOptions) (resp azfake.PagerResponder[ml.OnlineDeploymentsClientListResponse]) {
			w.mu.Lock()
			defer w.mu.Unlock()
			var all []*ml.OnlineDeployment
			for _, d := range w.deployments[ep] {
				all = append(all, to.Ptr(d))
			}
			resp.AddPage(http.StatusOK, ml.OnlineDeploymentsClientListResponse{OnlineDeploymentTrackedResourceArmPaginatedResult: ml.OnlineDeploymentTrackedResourceArmPaginatedResult{Value: all}}, nil)
			return
		},
	}
}

// traffic is an endpoint's traffic map as plain ints.
func (w *workspace) traffic(ep string) map[string]int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int32{}
	e, ok := w.endpoints[ep]
	if !ok {
		return nil
	}
	for k, v := range e.Properties.Traffic {
		out[k] = *v
	}
	return out
}

func (w *workspace) deploymentNames(ep string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for n := range w.deployments[ep] {
		names = append(names, n)
	}
	return names
}

func (w *workspace) countCalls(prefix string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// seed adds an endpoint with n deployments that belongs to someone else.
func (w *workspace) seed(name, site, compute string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.endpoints[name] = ml.OnlineEndpoint{Name: to.Ptr(name), Tags: map[string]*string{"modelfleet.site": to.Ptr(site)},
		Properties: &ml.OnlineEndpointProperties{Compute: to.Ptr(compute), Traffic: map[string]*int32{}}}
	w.deployments[name] = map[string]ml.OnlineDeployment{}
	for i := range n {
		dn := fmt.Sprintf("d%d", i)
		w.deployments[name][dn] = ml.OnlineDeployment{Name: to.Ptr(dn)}
	}
}
