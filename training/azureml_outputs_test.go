package training

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/azureblob/blobtest"
	"github.com/modelfleet/modelfleet/internal/amlfake"
)

const (
	storeContainer = amlfake.BlobContainer
	storeHost      = amlfake.BlobHost
)

// newAzureMLWithStorage is the runner against the fake workspace (jobs,
// computes, its default datastore) and a local Blob Storage.
func newAzureMLWithStorage(t *testing.T, w *amlfake.Workspace, store *blobtest.Storage, cfg AzureMLConfig) *AzureML {
	t.Helper()
	cfg.SubscriptionID, cfg.ResourceGroup, cfg.Workspace = amlfake.SubscriptionID, amlfake.ResourceGroup, amlfake.Name
	cfg.Credential = &azfake.TokenCredential{}
	cfg.ClientOptions = w.ClientOptions(nil)
	cfg.BlobOptions = store.Options()
	cfg.PollFrequency = time.Millisecond
	a, err := NewAzureML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A completed job's model.txt and metrics.json come back from the output
// folder Submit chose, through the datastore's blob container, with the
// storage token; a second call (also from another runner, as after a
// worker restart) reads nothing again.
func TestAzureMLOutputs(t *testing.T) {
	w, store, outDir := amlfake.New(), blobtest.Start(t), t.TempDir()
	a := newAzureMLWithStorage(t, w, store, AzureMLConfig{OutputDir: outDir})
	ctx := context.Background()
	ref, err := a.Submit(ctx, azureJob("retrain-bf-9", modelfleet.ComputeAzureMLCloud, "cpu-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	w.SetJobStatus(ref.ID, ml.JobStatusCompleted)
	folder := "/" + storeContainer + "/modelfleet/retrain/retrain-bf-9/model/"
	model, metrics := []byte("tree\nversion=v4\n"), []byte(`{"train_auc":0.97}`)
	store.Blobs[folder+modelfleet.JobModelFile], store.Blobs[folder+modelfleet.JobMetricsFile] = model, metrics

	dir, err := a.Outputs(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dir, filepath.Join(outDir, "retrain-bf-9"); got != want {
		t.Errorf("dir = %s, want %s", got, want)
	}
	for name, want := range map[string][]byte{modelfleet.JobModelFile: model, modelfleet.JobMetricsFile: metrics} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != string(want) {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if m, err := modelfleet.ReadJobMetrics(filepath.Join(dir, modelfleet.JobMetricsFile)); err != nil || m["train_auc"] != 0.97 {
		t.Errorf("metrics = %v, %v", m, err)
	}
	reqs := store.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d storage requests, want 2: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if r.Method != http.MethodGet || r.Host != storeHost || !strings.HasPrefix(r.Path, folder) || !strings.HasPrefix(r.Auth, "Bearer ") || r.Version == "" {
			t.Errorf("request %+v: want a Get Blob of %s%s with a bearer token and x-ms-version", r, storeHost, folder)
		}
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 1 {
		t.Errorf("output dir holds %d entries, want the job's folder only", len(entries))
	}

	for _, r := range []*AzureML{a, newAzureMLWithStorage(t, w, store, AzureMLConfig{OutputDir: outDir})} {
		if again, err := r.Outputs(ctx, ref); err != nil || again != dir {
			t.Errorf("second Outputs = %s, %v; want %s", again, err, dir)
		}
	}
	if n := len(store.Requests()); n != 2 {
		t.Errorf("%d storage requests after the second calls, want still 2", n)
	}
}

// metrics.json is optional in the job contract; model.txt is not, and its
// absence names the blob. 403 names the role; a file over the bound is
// refused. A failed download leaves no folder behind, so a later call
// starts afresh.
func TestAzureMLOutputsFailures(t *testing.T) {
	w, store, outDir := amlfake.New(), blobtest.Start(t), t.TempDir()
	a := newAzureMLWithStorage(t, w, store, AzureMLConfig{OutputDir: outDir, MaxOutputBytes: 64})
	ctx := context.Background()
	folder := func(id string) string { return "/" + storeContainer + "/modelfleet/retrain/" + id + "/model/" }

	// no metrics.json
	store.Blobs[folder("j-nometrics")+modelfleet.JobModelFile] = []byte("tree\n")
	dir, err := a.Outputs(ctx, modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "j-nometrics"})
	if err != nil {
		t.Fatalf("without metrics.json: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, modelfleet.JobMetricsFile)); !os.IsNotExist(err) {
		t.Errorf("metrics.json: %v, want none", err)
	}

	// no model.txt
	ref := modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "j-nomodel"}
	store.Blobs[folder("j-nomodel")+modelfleet.JobMetricsFile] = []byte("{}")
	_, err = a.Outputs(ctx, ref)
	if modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND || !strings.Contains(err.Error(), storeHost+folder("j-nomodel")+modelfleet.JobModelFile) || !strings.Contains(err.Error(), "BlobNotFound") {
		t.Errorf("without model.txt: %v, want ENOTFOUND naming the blob", err)
	}
	if _, err := os.Stat(filepath.Join(outDir, "j-nomodel")); !os.IsNotExist(err) {
		t.Errorf("a failed download left its folder: %v", err)
	}
	store.Blobs[folder("j-nomodel")+modelfleet.JobModelFile] = []byte("tree\n")
	if _, err := a.Outputs(ctx, ref); err != nil {
		t.Errorf("once model.txt is there: %v", err)
	}

	// 403
	store.Blobs[folder("j-forbidden")+modelfleet.JobModelFile] = []byte("tree\n")
	store.Status[folder("j-forbidden")+modelfleet.JobModelFile] = http.StatusForbidden
	if _, err := a.Outputs(ctx, modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "j-forbidden"}); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED || !strings.Contains(err.Error(), "Storage Blob Data Reader") {
		t.Errorf("forbidden: %v, want EUNAUTHORIZED naming Storage Blob Data Reader", err)
	}

	// too large
	store.Blobs[folder("j-large")+modelfleet.JobModelFile] = []byte(strings.Repeat("x", 65))
	if _, err := a.Outputs(ctx, modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "j-large"}); modelfleet.ErrorCode(err) != modelfleet.ETOOLARGE {
		t.Errorf("65 bytes over a bound of 64: %v, want ETOOLARGE", err)
	}

	// a policy's own output folder; a host that is not a blob endpoint
	store.Blobs["/other/press/model.txt"] = []byte("tree\n")
	if _, err := a.Outputs(ctx, modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "j-policy", OutputURI: "https://" + storeHost + "/other/press"}); err != nil {
		t.Errorf("policy output: %v", err)
	}
	if _, err := a.Outputs(ctx, modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "j-evil", OutputURI: "https://attacker.example/c/"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("foreign host: %v, want EINVALID", err)
	}
	if _, err := a.Outputs(ctx, modelfleet.RunRef{Kind: modelfleet.ComputeAzureMLCloud, ID: "../x"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad job id: %v, want EINVALID", err)
	}
	for _, r := range store.Requests() {
		if r.Host != storeHost {
			t.Errorf("a request went to %s", r.Host)
		}
	}
	if n := w.Count("GET datastore " + DefaultOutputDatastore); n != 1 {
		t.Errorf("datastore read %d times, want once (cached)", n)
	}
}
