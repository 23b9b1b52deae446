package training

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/amlfake"
)

const (
	sub       = amlfake.SubscriptionID
	computes  = "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/"
	arcID     = "/subscriptions/" + sub + "/resourceGroups/plant/providers/Microsoft.Kubernetes/connectedClusters/plant-a"
	aksID     = "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-1"
	environID = "azureml:lightgbm-train:3"
)

func newAzureML(t *testing.T, w *amlfake.Workspace, wrap func(policy.Transporter) policy.Transporter) *AzureML {
	t.Helper()
	a, err := NewAzureML(AzureMLConfig{
		SubscriptionID: sub, ResourceGroup: amlfake.ResourceGroup, Workspace: amlfake.Name, Credential: &azfake.TokenCredential{},
		ClientOptions: w.ClientOptions(wrap),
		PollFrequency: time.Millisecond, VerifyCompute: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func azureJob(id, kind, compute string) modelfleet.TrainingJob {
	return modelfleet.TrainingJob{
		ID: id, Model: "bearing-failure", Compute: kind, ComputeID: computes + compute,
		Command:     "python train.py --data ${{inputs.data}} --out ${{outputs.model}}",
		Data:        "azureml://datastores/plant_a/paths/bearing-failure/labelled/",
		Environment: environID, Code: "azureml:retrain-code:1",
		Env:     map[string]string{"SEED": "7"},
		Tags:    map[string]string{"modelfleet.cycle": "3"},
		Timeout: 90 * time.Minute,
	}
}

// The job as Azure ML receives it: a command job on the policy's compute,
// the data input and model output by the contract's names, tagged for the
// gateway; a second Submit finds it instead of creating another.
func TestAzureMLSubmitStatusAndIdempotence(t *testing.T) {
	w := amlfake.New()
	a := newAzureML(t, w, nil)
	ctx := context.Background()
	ref, err := a.Submit(ctx, azureJob("retrain-bf-1", modelfleet.ComputeAzureMLCloud, "cpu-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID != "retrain-bf-1" || ref.Kind != modelfleet.ComputeAzureMLCloud || ref.ComputeID != computes+"cpu-cluster" {
		t.Errorf("ref = %+v", ref)
	}
	cj := w.Job("retrain-bf-1")
	if cj == nil {
		t.Fatal("no job retrain-bf-1 in the workspace")
	}
	if got := *cj.Command; got != "python train.py --data ${{inputs.data}} --out ${{outputs.model}}" {
		t.Errorf("command = %q", got)
	}
	if *cj.ComputeID != computes+"cpu-cluster" || *cj.EnvironmentID != environID || *cj.CodeID != "azureml:retrain-code:1" || *cj.JobType != ml.JobTypeCommand {
		t.Errorf("job = compute %q env %q code %q type %q", *cj.ComputeID, *cj.EnvironmentID, *cj.CodeID, *cj.JobType)
	}
	if v := cj.Tags[modelfleet.RetrainRunTag]; v == nil || *v != "bearing-failure" || *cj.Tags["modelfleet.cycle"] != "3" {
		t.Errorf("tags = %v, want %s=bearing-failure", cj.Tags, modelfleet.RetrainRunTag)
	}
	in, ok := cj.Inputs[InputData].(*ml.URIFolderJobInput)
	if !ok || *in.URI != "azureml://datastores/plant_a/paths/bearing-failure/labelled/" || *in.Mode != ml.InputDeliveryModeReadOnlyMount {
		t.Errorf("input = %#v", cj.Inputs[InputData])
	}
	wantOut := "azureml://datastores/workspaceblobstore/paths/modelfleet/retrain/retrain-bf-1/model/"
	if out, ok := cj.Outputs[OutputModel].(*ml.URIFolderJobOutput); !ok || *out.JobOutputType != ml.JobOutputTypeURIFolder ||
		out.URI == nil || *out.URI != wantOut || *out.Mode != ml.OutputDeliveryModeUpload {
		t.Errorf("output = %#v, want an upload to %s", cj.Outputs[OutputModel], wantOut)
	}
	if ref.OutputURI != wantOut {
		t.Errorf("ref output = %q, want %q", ref.OutputURI, wantOut)
	}
	if *cj.EnvironmentVariables["SEED"] != "7" || *cj.EnvironmentVariables[EnvJob] != "retrain-bf-1" {
		t.Errorf("env = %v", cj.EnvironmentVariables)
	}
	if cj.Limits == nil || *cj.Limits.Timeout != "PT1H30M" {
		t.Errorf("limits = %+v, want PT1H30M", cj.Limits)
	}

	if _, err := a.Submit(ctx, azureJob("retrain-bf-1", modelfleet.ComputeAzureMLCloud, "cpu-cluster")); err != nil {
		t.Fatal(err)
	}
	if n := w.Count("PUT job retrain-bf-1"); n != 1 {
		t.Errorf("created %d times, want once", n)
	}

	for _, s := range []ml.JobStatus{ml.JobStatusQueued, ml.JobStatusRunning, ml.JobStatusFinalizing, ml.JobStatusCompleted} {
		w.SetJobStatus("retrain-bf-1", s)
		st, err := a.Status(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != string(s) || st.Terminal != (s == ml.JobStatusCompleted) {
			t.Errorf("status %s: got %+v", s, st)
		}
	}
	w.SetJobStatus("retrain-bf-1", ml.JobStatusFailed)
	if st, _ := a.Status(ctx, ref); st.Status != modelfleet.JobFailed || !st.Terminal || st.Message == "" {
		t.Errorf("failed job: %+v", st)
	}
	if _, err := a.Status(ctx, modelfleet.RunRef{ID: "nope"}); !errors.Is(err, modelfleet.ErrRunNotFound) {
		t.Errorf("unknown job: %v, want not found", err)
	}
}

// Cancel runs the long-running cancel operation to its end; a finished or
// unknown job is left alone.
func TestAzureMLCancel(t *testing.T) {
	w := amlfake.New()
	a := newAzureML(t, w, nil)
	ctx := context.Background()
	ref, err := a.Submit(ctx, azureJob("retrain-bf-2", modelfleet.ComputeAzureMLCloud, "cpu-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	w.SetJobStatus(ref.ID, ml.JobStatusRunning)
	if err := a.Cancel(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.Status(ctx, ref); st.Status != modelfleet.JobCanceled || !st.Terminal {
		t.Errorf("after cancel: %+v", st)
	}
	if err := a.Cancel(ctx, ref); err != nil {
		t.Errorf("second cancel: %v", err)
	}
	if n := w.Count("CANCEL job " + ref.ID); n != 1 {
		t.Errorf("cancel requested %d times, want once (the job had ended)", n)
	}
	if err := a.Cancel(ctx, modelfleet.RunRef{ID: "nope"}); err != nil {
		t.Errorf("cancel of an unknown job: %v", err)
	}
	// A failing cancel operation is an error (the activity retries).
	ref3, _ := a.Submit(ctx, azureJob("retrain-bf-3", modelfleet.ComputeAzureMLCloud, "cpu-cluster"))
	w.SetJobStatus(ref3.ID, ml.JobStatusRunning)
	w.FailNext("CANCEL job "+ref3.ID, http.StatusInternalServerError)
	if err := a.Cancel(ctx, ref3); err == nil || modelfleet.ErrorCode(err) != modelfleet.EINTERNAL {
		t.Errorf("cancel against a failing service: %v, want a transient error", err)
	}
}

// Requests that cannot succeed are classified so the activity stops
// retrying; transient ones are not.
func TestAzureMLFailures(t *testing.T) {
	w := amlfake.New()
	a := newAzureML(t, w, func(tr policy.Transporter) policy.Transporter { return tr })
	ctx := context.Background()
	cases := []struct {
		status int
		code   string
	}{
		{http.StatusBadRequest, modelfleet.EINVALID},
		{http.StatusForbidden, modelfleet.EUNAUTHORIZED},
		{http.StatusConflict, modelfleet.EINTERNAL}, // conflict, and the job still is not there
	}
	for i, c := range cases {
		id := fmt.Sprintf("retrain-fail-%d", i)
		w.FailNext("PUT job "+id, c.status)
		_, err := a.Submit(ctx, azureJob(id, modelfleet.ComputeAzureMLCloud, "cpu-cluster"))
		if got := modelfleet.ErrorCode(err); got != c.code {
			t.Errorf("PUT answered %d: error %v (code %q), want code %q", c.status, err, got, c.code)
		}
	}
	// A job definition the service rejects is invalid, not retried.
	j := azureJob("retrain-noenv", modelfleet.ComputeAzureMLCloud, "cpu-cluster")
	j.Environment = ""
	if _, err := a.Submit(ctx, j); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("no environment: %v", err)
	}
	// A compute of another workspace, or a local job, is refused up front.
	j = azureJob("retrain-otherws", modelfleet.ComputeAzureMLCloud, "x")
	j.ComputeID = strings.Replace(j.ComputeID, "/workspaces/ws/", "/workspaces/other/", 1)
	if _, err := a.Submit(ctx, j); modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "other") {
		t.Errorf("compute of another workspace: %v", err)
	}
	j = azureJob("retrain-local", modelfleet.ComputeLocal, "x")
	if _, err := a.Submit(ctx, j); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("local job on azure: %v", err)
	}
}

// Throttling: a 429 with a short Retry-After is waited out by the client
// itself; one longer than the client waits for comes back as a
// ThrottledError carrying the delay, for Temporal's next retry.
func TestAzureMLThrottling(t *testing.T) {
	w := amlfake.New()
	th := amlfake.NewThrottle(1, "1", nil)
	a := newAzureML(t, w, th.Wrap)
	ctx := context.Background()
	start := time.Now()
	ref, err := a.Submit(ctx, azureJob("retrain-bf-4", modelfleet.ComputeAzureMLCloud, "cpu-cluster"))
	if err != nil {
		t.Fatalf("submit through one 429: %v", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %s, want the 1s Retry-After honoured", el)
	}
	if w.Count("PUT job "+ref.ID) != 1 {
		t.Errorf("job created %d times", w.Count("PUT job "+ref.ID))
	}

	th.Set(100, "120")
	_, err = a.Status(ctx, ref)
	var te *modelfleet.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != 120*time.Second {
		t.Fatalf("status while throttled: %v, want a ThrottledError with 120s", err)
	}
	if modelfleet.ErrorCode(err) != modelfleet.EINTERNAL {
		t.Errorf("throttling must stay retryable, got code %q", modelfleet.ErrorCode(err))
	}
}

// An edge job goes only to a Kubernetes compute backed by an Arc-connected
// cluster.
func TestAzureMLEdgeComputeIsVerified(t *testing.T) {
	w := amlfake.New()
	w.SetCompute("arc-plant-a", &ml.Kubernetes{ComputeType: to.Ptr(ml.ComputeTypeKubernetes), ResourceID: to.Ptr(arcID)})
	w.SetCompute("aks", &ml.Kubernetes{ComputeType: to.Ptr(ml.ComputeTypeKubernetes), ResourceID: to.Ptr(aksID)})
	w.SetCompute("cpu-cluster", &ml.AmlCompute{ComputeType: to.Ptr(ml.ComputeTypeAmlCompute)})
	a := newAzureML(t, w, nil)
	ctx := context.Background()
	if _, err := a.Submit(ctx, azureJob("edge-ok", modelfleet.ComputeAzureMLEdge, "arc-plant-a")); err != nil {
		t.Fatalf("edge job on an Arc compute: %v", err)
	}
	for _, c := range []string{"aks", "cpu-cluster", "missing"} {
		_, err := a.Submit(ctx, azureJob("edge-"+c, modelfleet.ComputeAzureMLEdge, c))
		if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("edge job on %s: %v, want refused", c, err)
		}
		if w.Count("PUT job edge-"+c) != 0 {
			t.Errorf("edge job on %s was created", c)
		}
	}
	// Cloud jobs are not checked.
	if _, err := a.Submit(ctx, azureJob("cloud-ok", modelfleet.ComputeAzureMLCloud, "cpu-cluster")); err != nil {
		t.Fatal(err)
	}
	if w.Count("GET compute cpu-cluster") != 1 { // only the edge attempt above
		t.Errorf("compute reads: %v", w.Calls())
	}
}

func TestISODuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		90 * time.Minute: "PT1H30M", 24 * time.Hour: "PT24H", 45 * time.Second: "PT45S",
		time.Hour + 5*time.Second: "PT1H5S", 0: "PT1S",
	} {
		if got := isoDuration(d); got != want {
			t.Errorf("isoDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
