package amlfake

import (
	"context"
	"net/http"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"
)

// Job returns a copy of a command job as stored, nil if there is none.
func (w *Workspace) Job(id string) *ml.CommandJob {
	w.mu.Lock()
	defer w.mu.Unlock()
	cj, ok := w.jobs[id]
	if !ok {
		return nil
	}
	c := *cj
	return &c
}

// SetJobStatus moves a job on, as its compute would.
func (w *Workspace) SetJobStatus(id string, s ml.JobStatus) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jobs[id].Status = to.Ptr(s)
}

// SetCompute adds or replaces a compute.
func (w *Workspace) SetCompute(name string, c ml.ComputeClassification) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.computes[name] = c
}

// jobsServer serves command jobs: create (a new job is NotStarted), get,
// and cancel as a long-running operation. Other job types are refused.
func (w *Workspace) jobsServer() fake.JobsServer {
	return fake.JobsServer{
		CreateOrUpdate: func(_ context.Context, rg, ws, id string, body ml.JobBase, _ *ml.JobsClientCreateOrUpdateOptions) (resp azfake.Responder[ml.JobsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "PUT job "+id); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			cj, ok := body.Properties.(*ml.CommandJob)
			if !ok || cj.Command == nil || cj.EnvironmentID == nil {
				errResp.SetResponseError(http.StatusBadRequest, errUser)
				return
			}
			cj.Status = to.Ptr(ml.JobStatusNotStarted)
			w.jobs[id] = cj
			body.Name = to.Ptr(id)
			resp.SetResponse(http.StatusCreated, ml.JobsClientCreateOrUpdateResponse{JobBase: body}, nil)
			return
		},
		Get: func(_ context.Context, rg, ws, id string, _ *ml.JobsClientGetOptions) (resp azfake.Responder[ml.JobsClientGetResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "GET job "+id); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			cj, ok := w.jobs[id]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, errUser)
				return
			}
			c := *cj
			resp.SetResponse(http.StatusOK, ml.JobsClientGetResponse{JobBase: ml.JobBase{Name: to.Ptr(id), Properties: &c}}, nil)
			return
		},
		BeginCancel: func(_ context.Context, rg, ws, id string, _ *ml.JobsClientBeginCancelOptions) (resp azfake.PollerResponder[ml.JobsClientCancelResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "CANCEL job "+id); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			cj, ok := w.jobs[id]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, errUser)
				return
			}
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, ml.JobsClientCancelResponse{}, nil)
			cj.Status = to.Ptr(ml.JobStatusCanceled)
			return
		},
	}
}

func (w *Workspace) computeServer() fake.ComputeServer {
	return fake.ComputeServer{
		Get: func(_ context.Context, rg, ws, name string, _ *ml.ComputeClientGetOptions) (resp azfake.Responder[ml.ComputeClientGetResponse], errResp azfake.ErrorResponder) {
			if s, code := w.call(rg, ws, "GET compute "+name); s != 0 {
				errResp.SetResponseError(s, code)
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			c, ok := w.computes[name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "NotFound")
				return
			}
			resp.SetResponse(http.StatusOK, ml.ComputeClientGetResponse{ComputeResource: ml.ComputeResource{Name: to.Ptr(name), Properties: c}}, nil)
			return
		},
	}
}
