package training

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/azureblob"
)

// AzureMLConfig configures an AzureML runner.
type AzureMLConfig struct {
	SubscriptionID string
	ResourceGroup  string
	Workspace      string
	Credential     azcore.TokenCredential
	// ClientOptions, e.g. a fake transport in tests.
	ClientOptions *arm.ClientOptions
	// Experiment groups the jobs in the studio (default "modelfleet-retrain").
	Experiment string
	// PollFrequency is how often Cancel polls the cancellation (default 10 s).
	PollFrequency time.Duration
	// VerifyCompute, when set, reads the compute before submitting: an
	// azureml-edge job must go to a Kubernetes compute backed by an
	// Arc-connected cluster (Microsoft.Kubernetes/connectedClusters), so
	// data that must stay in the plant never goes to a cloud cluster by a
	// configuration slip.
	VerifyCompute bool

	// Datastore receives the jobs' model outputs (default
	// "workspaceblobstore", which every workspace has): a job without a
	// policy Output writes to
	// azureml://datastores/<Datastore>/paths/<OutputPrefix>/<job id>/model/,
	// so the worker knows where to read it without asking Azure ML.
	Datastore string
	// OutputPrefix is the folder of job outputs in the datastore (default
	// "modelfleet/retrain").
	OutputPrefix string
	// OutputDir is the local folder Outputs downloads into, one folder per
	// job (default $TMPDIR/modelfleet-outputs).
	OutputDir string
	// MaxOutputBytes bounds each file Outputs downloads (default 256 MiB).
	MaxOutputBytes int64
	// BlobOptions are the blob pipeline's (transport, retry); nil:
	// azcore's defaults. BlobSuffixes are the storage DNS suffixes the
	// storage token may go to (default azureblob.DefaultSuffixes).
	BlobOptions  *policy.ClientOptions
	BlobSuffixes []string
}

// Defaults of AzureMLConfig.
const (
	DefaultOutputDatastore = "workspaceblobstore"
	DefaultOutputPrefix    = "modelfleet/retrain"
	DefaultMaxOutputBytes  = 256 << 20
)

// AzureML submits Azure Machine Learning command jobs through the ARM API
// (armmachinelearning/v4 JobsClient, API version 2024-04-01) to a compute
// cluster or an attached Arc Kubernetes compute. Job names are the job IDs,
// so a second Submit of the same job finds the first one.
type AzureML struct {
	cfg        AzureMLConfig
	jobs       *ml.JobsClient
	computes   *ml.ComputeClient
	datastores *azureblob.Datastores
	blobs      *azureblob.Client
}

var (
	_ modelfleet.Trainer         = (*AzureML)(nil)
	_ modelfleet.TrainingOutputs = (*AzureML)(nil)
)

// NewAzureML returns a runner for one workspace.
func NewAzureML(cfg AzureMLConfig) (*AzureML, error) {
	if cfg.SubscriptionID == "" || cfg.ResourceGroup == "" || cfg.Workspace == "" || cfg.Credential == nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "azure ml runner: subscription, resource group, workspace and credential are required")
	}
	if cfg.Experiment == "" {
		cfg.Experiment = "modelfleet-retrain"
	}
	if cfg.PollFrequency <= 0 {
		cfg.PollFrequency = 10 * time.Second
	}
	if cfg.Datastore == "" {
		cfg.Datastore = DefaultOutputDatastore
	}
	if cfg.OutputPrefix = strings.Trim(cfg.OutputPrefix, "/"); cfg.OutputPrefix == "" {
		cfg.OutputPrefix = DefaultOutputPrefix
	}
	if cfg.OutputDir == "" {
		cfg.OutputDir = filepath.Join(os.TempDir(), "modelfleet-outputs")
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	jobs, err := ml.NewJobsClient(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("azure ml runner: %w", err)
	}
	computes, err := ml.NewComputeClient(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("azure ml runner: %w", err)
	}
	a := &AzureML{cfg: cfg, jobs: jobs, computes: computes, blobs: azureblob.New("modelfleet/training", cfg.Credential, cfg.BlobOptions)}
	a.datastores = &azureblob.Datastores{SubscriptionID: cfg.SubscriptionID, ResourceGroup: cfg.ResourceGroup, Workspace: cfg.Workspace,
		Suffixes: cfg.BlobSuffixes, Classify: a.err}
	if a.datastores.Client, err = ml.NewDatastoresClient(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions); err != nil {
		return nil, fmt.Errorf("azure ml runner: %w", err)
	}
	return a, nil
}

// Submit creates the command job unless a job of that name exists.
func (a *AzureML) Submit(ctx context.Context, job modelfleet.TrainingJob) (modelfleet.RunRef, error) {
	if err := job.Validate(); err != nil {
		return modelfleet.RunRef{}, err
	}
	p := modelfleet.ComputePolicy{Kind: job.Compute, ComputeID: job.ComputeID}
	if job.Compute != modelfleet.ComputeAzureMLCloud && job.Compute != modelfleet.ComputeAzureMLEdge {
		return modelfleet.RunRef{}, modelfleet.Errorf(modelfleet.EINVALID, "job %s: the Azure ML runner cannot run on compute %q", job.ID, job.Compute)
	}
	if err := p.Validate(); err != nil {
		return modelfleet.RunRef{}, err
	}
	if ws := workspaceOf(job.ComputeID); !strings.EqualFold(ws, a.cfg.Workspace) {
		return modelfleet.RunRef{}, modelfleet.Errorf(modelfleet.EINVALID, "job %s: compute %s belongs to workspace %q, not %q", job.ID, p.ComputeName(), ws, a.cfg.Workspace)
	}
	if job.Environment == "" {
		return modelfleet.RunRef{}, modelfleet.Errorf(modelfleet.EINVALID, "job %s: an Azure ML environment is required", job.ID)
	}
	if job.Output == "" {
		job.Output = a.outputURI(job.ID)
	}
	ref := modelfleet.RunRef{Kind: job.Compute, ID: job.ID, Model: job.Model, ComputeID: job.ComputeID, OutputURI: job.Output}
	// Idempotence: a job of this name is this job, submitted before.
	if _, err := a.jobs.Get(ctx, a.cfg.ResourceGroup, a.cfg.Workspace, job.ID, nil); err == nil {
		return ref, nil
	} else if !azureblob.IsStatus(err, http.StatusNotFound) {
		return modelfleet.RunRef{}, a.err("get job "+job.ID, err)
	}
	if a.cfg.VerifyCompute && job.Compute == modelfleet.ComputeAzureMLEdge {
		if err := a.verifyEdge(ctx, p); err != nil {
			return modelfleet.RunRef{}, err
		}
	}
	_, err := a.jobs.CreateOrUpdate(ctx, a.cfg.ResourceGroup, a.cfg.Workspace, job.ID, ml.JobBase{Properties: a.commandJob(job)}, nil)
	if azureblob.IsStatus(err, http.StatusConflict) {
		// Created concurrently (a retried request whose first attempt
		// went through): the job exists.
		if _, gerr := a.jobs.Get(ctx, a.cfg.ResourceGroup, a.cfg.Workspace, job.ID, nil); gerr == nil {
			return ref, nil
		}
	}
	if err != nil {
		return modelfleet.RunRef{}, a.err("create job "+job.ID, err)
	}
	return ref, nil
}

// commandJob is the job definition: the command with its data input and
// model output, tagged so the gateway routes the job's events back.
func (a *AzureML) commandJob(job modelfleet.TrainingJob) *ml.CommandJob {
	tags := map[string]*string{}
	for k, v := range job.Tags {
		tags[k] = to.Ptr(v)
	}
	tags[modelfleet.RetrainRunTag] = to.Ptr(job.Model)
	env := map[string]*string{EnvJob: to.Ptr(job.ID)}
	for k, v := range job.Env {
		env[k] = to.Ptr(v)
	}
	// Upload (rather than a mount): the files are copied to the output's
	// URI when the command ends, before the job completes, so a completed
	// job's outputs are there to be read.
	out := &ml.URIFolderJobOutput{JobOutputType: to.Ptr(ml.JobOutputTypeURIFolder), Mode: to.Ptr(ml.OutputDeliveryModeUpload),
		URI: to.Ptr(job.Output), Description: to.Ptr("the trained model: " + modelfleet.JobModelFile + " and " + modelfleet.JobMetricsFile)}
	cj := &ml.CommandJob{
		JobType:        to.Ptr(ml.JobTypeCommand),
		Command:        to.Ptr(job.Command),
		EnvironmentID:  to.Ptr(job.Environment),
		ComputeID:      to.Ptr(job.ComputeID),
		DisplayName:    to.Ptr("retrain " + job.Model),
		Description:    to.Ptr("modelfleet retraining of " + job.Model),
		ExperimentName: to.Ptr(a.cfg.Experiment),
		Inputs: map[string]ml.JobInputClassification{InputData: &ml.URIFolderJobInput{
			JobInputType: to.Ptr(ml.JobInputTypeURIFolder), URI: to.Ptr(job.Data), Mode: to.Ptr(ml.InputDeliveryModeReadOnlyMount),
			Description: to.Ptr("labelled training data (CSV)"),
		}},
		Outputs:              map[string]ml.JobOutputClassification{OutputModel: out},
		EnvironmentVariables: env,
		Tags:                 tags,
		Properties:           map[string]*string{"modelfleet.job": to.Ptr(job.ID), "modelfleet.compute": to.Ptr(job.Compute)},
	}
	if job.Code != "" {
		cj.CodeID = to.Ptr(job.Code)
	}
	if job.Timeout > 0 {
		cj.Limits = &ml.CommandJobLimits{JobLimitsType: to.Ptr(ml.JobLimitsTypeCommand), Timeout: to.Ptr(isoDuration(job.Timeout))}
	}
	return cj
}

// outputURI is where a job's model output goes unless its policy says:
// a folder of its own, named by the job ID, on the runner's datastore.
func (a *AzureML) outputURI(id string) string {
	return "azureml://datastores/" + a.cfg.Datastore + "/paths/" + a.cfg.OutputPrefix + "/" + id + "/" + OutputModel + "/"
}

// Outputs downloads the job's model.txt and, if it wrote one,
// metrics.json from its output folder (ref.OutputURI, else the runner's
// default for the job ID) into <OutputDir>/<job id>/, and returns that
// folder. A folder downloaded before is returned as it is: files are
// downloaded into a temporary folder renamed into place when complete.
func (a *AzureML) Outputs(ctx context.Context, ref modelfleet.RunRef) (string, error) {
	if !modelfleet.ValidJobID(ref.ID) {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "azure ml job id %q is invalid", ref.ID)
	}
	dir := filepath.Join(a.cfg.OutputDir, ref.ID)
	if exists(filepath.Join(dir, modelfleet.JobModelFile)) {
		return dir, nil
	}
	base := ref.OutputURI
	if base == "" {
		base = a.outputURI(ref.ID)
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	if err := os.MkdirAll(a.cfg.OutputDir, 0o755); err != nil {
		return "", fmt.Errorf("azure ml job %s outputs: %w", ref.ID, err)
	}
	tmp, err := os.MkdirTemp(a.cfg.OutputDir, "."+ref.ID+"-")
	if err != nil {
		return "", fmt.Errorf("azure ml job %s outputs: %w", ref.ID, err)
	}
	defer os.RemoveAll(tmp) // gone once renamed
	for _, name := range []string{modelfleet.JobModelFile, modelfleet.JobMetricsFile} {
		err := a.download(ctx, base+name, filepath.Join(tmp, name))
		if name == modelfleet.JobMetricsFile && modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			continue // optional in the job contract
		}
		if err != nil {
			return "", fmt.Errorf("azure ml job %s output %s: %w", ref.ID, name, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		// A concurrent call may have put its copy there first.
		if exists(filepath.Join(dir, modelfleet.JobModelFile)) {
			return dir, nil
		}
		return "", fmt.Errorf("azure ml job %s outputs: %w", ref.ID, err)
	}
	return dir, nil
}

// download writes the blob that uri names to path, bounded by
// MaxOutputBytes.
func (a *AzureML) download(ctx context.Context, uri, path string) error {
	u, err := a.datastores.BlobURL(ctx, uri)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := a.blobs.Get(ctx, u, a.cfg.MaxOutputBytes, f); err != nil {
		f.Close()
		os.Remove(path) // an optional file that is missing must stay missing
		return err
	}
	return f.Close()
}

// verifyEdge checks that an edge job's compute is an attached Arc cluster.
func (a *AzureML) verifyEdge(ctx context.Context, p modelfleet.ComputePolicy) error {
	resp, err := a.computes.Get(ctx, a.cfg.ResourceGroup, a.cfg.Workspace, p.ComputeName(), nil)
	if azureblob.IsStatus(err, http.StatusNotFound) {
		return modelfleet.Errorf(modelfleet.EINVALID, "compute %s does not exist in workspace %s", p.ComputeName(), a.cfg.Workspace)
	} else if err != nil {
		return a.err("get compute "+p.ComputeName(), err)
	}
	k, ok := resp.Properties.(*ml.Kubernetes)
	if !ok {
		return modelfleet.Errorf(modelfleet.EINVALID, "compute %s is not a Kubernetes compute: %s jobs keep the data in the plant and run only on an Arc-connected cluster", p.ComputeName(), modelfleet.ComputeAzureMLEdge)
	}
	if rid := deref(k.ResourceID); !strings.Contains(strings.ToLower(rid), "/providers/microsoft.kubernetes/connectedclusters/") {
		return modelfleet.Errorf(modelfleet.EINVALID, "compute %s is backed by %q, not an Arc-connected cluster (Microsoft.Kubernetes/connectedClusters): %s jobs run only in the plant", p.ComputeName(), rid, modelfleet.ComputeAzureMLEdge)
	}
	return nil
}

// Status reads the job's status.
func (a *AzureML) Status(ctx context.Context, ref modelfleet.RunRef) (modelfleet.JobStatus, error) {
	resp, err := a.jobs.Get(ctx, a.cfg.ResourceGroup, a.cfg.Workspace, ref.ID, nil)
	if azureblob.IsStatus(err, http.StatusNotFound) {
		return modelfleet.JobStatus{}, fmt.Errorf("azure ml job %s: %w", ref.ID, modelfleet.ErrRunNotFound)
	} else if err != nil {
		return modelfleet.JobStatus{}, a.err("get job "+ref.ID, err)
	}
	st := modelfleet.JobNotStarted
	if resp.Properties != nil {
		if s := resp.Properties.GetJobBaseProperties().Status; s != nil {
			st = string(*s)
		}
	}
	out := modelfleet.JobStatus{Status: st, Terminal: modelfleet.JobTerminal(st)}
	if st == string(ml.JobStatusFailed) {
		out.Message = "the Azure ML job failed: see job " + ref.ID + " in the studio for its logs"
	}
	return out, nil
}

// Cancel requests cancellation and waits for it (the API's long-running
// operation). A job that finished, or does not exist, is left alone.
func (a *AzureML) Cancel(ctx context.Context, ref modelfleet.RunRef) error {
	st, err := a.Status(ctx, ref)
	if errors.Is(err, modelfleet.ErrRunNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if st.Terminal {
		return nil
	}
	poller, err := a.jobs.BeginCancel(ctx, a.cfg.ResourceGroup, a.cfg.Workspace, ref.ID, nil)
	if azureblob.IsStatus(err, http.StatusNotFound) {
		return nil
	} else if err != nil {
		return a.err("cancel job "+ref.ID, err)
	}
	if _, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: a.cfg.PollFrequency}); err != nil {
		return a.err("cancel job "+ref.ID, err)
	}
	return nil
}

// err classifies an ARM error: requests that can never succeed become
// EINVALID or EUNAUTHORIZED (the activity does not retry them); throttling
// that outlasted the client's own retries becomes a ThrottledError carrying
// Retry-After; anything else is transient.
func (a *AzureML) err(what string, err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("azure ml: %s: %w", what, err)
	}
	switch code := re.StatusCode; {
	case code == http.StatusTooManyRequests:
		d := azureblob.RetryAfter(re.RawResponse)
		if d <= 0 {
			d = 30 * time.Second
		}
		return &modelfleet.ThrottledError{RetryAfter: d, Err: fmt.Errorf("azure ml: %s: %s", what, re.ErrorCode)}
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "azure ml: %s: %d %s: check the worker identity's role on workspace %s", what, code, re.ErrorCode, a.cfg.Workspace)
	case code == http.StatusBadRequest, code == http.StatusNotFound, code == http.StatusUnprocessableEntity:
		return modelfleet.Errorf(modelfleet.EINVALID, "azure ml: %s: %d %s", what, code, re.ErrorCode)
	}
	return fmt.Errorf("azure ml: %s: %w", what, err)
}

// workspaceOf reads the workspace name out of a compute's ARM ID.
func workspaceOf(computeID string) string {
	parts := strings.Split(computeID, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "workspaces") {
			return parts[i+1]
		}
	}
	return ""
}

// isoDuration writes d as an ISO 8601 duration (PT1H30M5S), what Azure ML's
// job limits take.
func isoDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s <= 0 {
		s = 1
	}
	h, m, sec := s/3600, s%3600/60, s%60
	var b strings.Builder
	b.WriteString("PT")
	if h > 0 {
		fmt.Fprintf(&b, "%dH", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dM", m)
	}
	if sec > 0 || (h == 0 && m == 0) {
		fmt.Fprintf(&b, "%dS", sec)
	}
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
