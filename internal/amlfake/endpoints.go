package amlfake

import (
	"context"
	"maps"
	"net/http"
	"slices"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"
)

// PutEndpoint stores an online endpoint by its Name as is, without the
// checks a PUT through the service gets: one that someone else made.
func (w *Workspace) PutEndpoint(ep ml.OnlineEndpoint) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.endpoints[*ep.Name] = ep
}

// PutDeployment stores a deployment of an endpoint by its Name as is,
// without the checks a PUT through the service gets.
func (w *Workspace) PutDeployment(endpoint string, d ml.OnlineDeployment) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.deployments[endpoint] == nil {
		w.deployments[endpoint] = map[string]ml.OnlineDeployment{}
	}
	w.deployments[endpoint][*d.Name] = d
}

// Endpoint returns a stored online endpoint.
func (w *Workspace) Endpoint(name string) (ml.OnlineEndpoint, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ep, ok := w.endpoints[name]
	return ep, ok
}

// Traffic returns an endpoint's traffic split by deployment, nil if there
// is no such endpoint.
func (w *Workspace) Traffic(endpoint string) map[string]int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.endpoints[endpoint]
	if !ok {
		return nil
	}
	out := map[string]int32{}
	if e.Properties != nil {
		for k, v := range e.Properties.Traffic {
			out[k] = *v
		}
	}
	return out
}

// DeploymentNames returns the names of an endpoint's deployments, sorted.
func (w *Workspace) DeploymentNames(endpoint string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.deployments[endpoint]))
}

// FailProvisioning makes the long-running PUT of a deployment of that name
// end in failure (its readiness probe failed): the deployment is stored,
// provisioning state Failed.
func (w *Workspace) FailProvisioning(deployment string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failPoll[deployment] = true
}

// endpointsServer serves online endpoints. A PUT's traffic must sum to 0
// or 100 and name existing deployments; a DELETE takes the deployments
// along.
func (w *Workspace) endpointsServer() fake.OnlineEndpointsServer {
	return fake.OnlineEndpointsServer{
		Get: func(_ context.Context, rg, ws, name string, _ *ml.OnlineEndpointsClientGetOptions) (resp azfake.Responder[ml.OnlineEndpointsClientGetResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "GET endpoint "+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			ep, ok := w.endpoints[name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, errNotFound)
				return
			}
			resp.SetResponse(http.StatusOK, ml.OnlineEndpointsClientGetResponse{OnlineEndpoint: ep}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, ws, name string, body ml.OnlineEndpoint, _ *ml.OnlineEndpointsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[ml.OnlineEndpointsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "PUT endpoint "+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if body.Properties == nil {
				errResp.SetResponseError(http.StatusBadRequest, errBadRequest)
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
		BeginDelete: func(_ context.Context, rg, ws, name string, _ *ml.OnlineEndpointsClientBeginDeleteOptions) (resp azfake.PollerResponder[ml.OnlineEndpointsClientDeleteResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "DELETE endpoint "+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if _, ok := w.endpoints[name]; !ok {
				errResp.SetResponseError(http.StatusNotFound, errNotFound)
				return
			}
			delete(w.endpoints, name)
			delete(w.deployments, name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, ml.OnlineEndpointsClientDeleteResponse{}, nil)
			return
		},
		NewListPager: func(rg, ws string, _ *ml.OnlineEndpointsClientListOptions) (resp azfake.PagerResponder[ml.OnlineEndpointsClientListResponse]) {
			if s, code := w.call(rg, ws, "LIST endpoints"); s != 0 {
				resp.AddResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			var all []*ml.OnlineEndpoint
			for _, n := range slices.Sorted(maps.Keys(w.endpoints)) {
				all = append(all, to.Ptr(w.endpoints[n]))
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

// deploymentsServer serves online deployments. A deployment needs its
// endpoint and must be a Kubernetes one; a deployment that has traffic
// cannot be deleted.
func (w *Workspace) deploymentsServer() fake.OnlineDeploymentsServer {
	return fake.OnlineDeploymentsServer{
		Get: func(_ context.Context, rg, ws, ep, name string, _ *ml.OnlineDeploymentsClientGetOptions) (resp azfake.Responder[ml.OnlineDeploymentsClientGetResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "GET deployment "+ep+"/"+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			dep, ok := w.deployments[ep][name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, errNotFound)
				return
			}
			resp.SetResponse(http.StatusOK, ml.OnlineDeploymentsClientGetResponse{OnlineDeployment: dep}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, ws, ep, name string, body ml.OnlineDeployment, _ *ml.OnlineDeploymentsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[ml.OnlineDeploymentsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "PUT deployment "+ep+"/"+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
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
		BeginDelete: func(_ context.Context, rg, ws, ep, name string, _ *ml.OnlineDeploymentsClientBeginDeleteOptions) (resp azfake.PollerResponder[ml.OnlineDeploymentsClientDeleteResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "DELETE deployment "+ep+"/"+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if _, ok := w.deployments[ep][name]; !ok {
				errResp.SetResponseError(http.StatusNotFound, errNotFound)
				return
			}
			if e := w.endpoints[ep]; e.Properties != nil {
				if t := e.Properties.Traffic[name]; t != nil && *t > 0 {
					errResp.SetResponseError(http.StatusBadRequest, "DeploymentHasTraffic")
					return
				}
			}
			delete(w.deployments[ep], name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, ml.OnlineDeploymentsClientDeleteResponse{}, nil)
			return
		},
		NewListPager: func(rg, ws, ep string, _ *ml.OnlineDeploymentsClientListOptions) (resp azfake.PagerResponder[ml.OnlineDeploymentsClientListResponse]) {
			if s, code := w.call(rg, ws, "LIST deployments "+ep); s != 0 {
				resp.AddResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			var all []*ml.OnlineDeployment
			for _, n := range slices.Sorted(maps.Keys(w.deployments[ep])) {
				all = append(all, to.Ptr(w.deployments[ep][n]))
			}
			resp.AddPage(http.StatusOK, ml.OnlineDeploymentsClientListResponse{OnlineDeploymentTrackedResourceArmPaginatedResult: ml.OnlineDeploymentTrackedResourceArmPaginatedResult{Value: all}}, nil)
			return
		},
	}
}
