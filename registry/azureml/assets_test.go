package azureml_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/inference/mlflow"
	"github.com/modelfleet/modelfleet/registry/azureml"
)

const goldenMLflow = "../../inference/testdata/mlflow/golden/"

// upload puts the files of a local folder into the datastore under path,
// as Azure ML's upload of an asset folder does, and returns the digest of
// their mlflow.Pack archive.
func upload(t *testing.T, h *harness, dir, path string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []mlflow.File
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h.store.Blobs["/"+bucket+"/"+path+"/"+e.Name()] = b
		files = append(files, mlflow.File{Name: e.Name(), Data: b})
	}
	var buf bytes.Buffer
	if err := mlflow.Pack(files, &buf); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:])
}

func putAsset(h *harness, name, assetType, path string, props map[string]string) {
	p := map[string]*string{}
	for k, v := range props {
		p[k] = to.Ptr(v)
	}
	h.ws.PutModelVersion(name, "1", ml.ModelVersion{Properties: &ml.ModelVersionProperties{ModelType: to.Ptr(assetType),
		ModelURI: to.Ptr("azureml://datastores/workspaceblobstore/paths/" + path), Properties: p}})
}

// An mlflow_model version is the folder MLflow wrote: Get maps it to format
// mlflow, Download lists the folder (following the listing's pages), packs
// it as `modelfleet model pack` does and checks the digest, and the real
// ValidateModel activity loads and validates it.
func TestMLflowModelAsset(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	digest := upload(t, h, goldenMLflow+"xgboost_json", "azureml/ExperimentRun/dcid.run-1/model")
	putAsset(h, "bearing-xgb", azureml.AssetMLflow, "azureml/ExperimentRun/dcid.run-1/model", map[string]string{azureml.PropDigest: digest})
	m, err := h.reg.Get(ctx, "bearing-xgb", "1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != modelfleet.FormatMLflow || !strings.HasSuffix(m.ArtifactURL, "/model/") {
		t.Fatalf("Get = format %q, artifact %q", m.Format, m.ArtifactURL)
	}
	var buf bytes.Buffer
	if _, err := h.reg.Download(ctx, m.ArtifactURL, m.Digest, &buf); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(buf.Bytes()); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		t.Fatal("downloaded archive does not hash to the digest")
	}
	rep, err := (&activities.Cloud{Registry: h.reg}).ValidateModel(ctx, m.ModelRef)
	if err != nil || !rep.Result.Passed {
		t.Fatalf("ValidateModel = %+v, %v", rep.Result, err)
	}
	// Another digest: nothing is written.
	buf.Reset()
	other := "sha256:" + strings.Repeat("0", 64)
	if _, err := h.reg.Download(ctx, m.ArtifactURL, other, &buf); !errors.Is(err, azureml.ErrDigestMismatch) || buf.Len() != 0 {
		t.Fatalf("wrong digest: %v, %d bytes written", err, buf.Len())
	}
	// A format property that says otherwise is refused.
	putAsset(h, "bearing-xgb", azureml.AssetMLflow, "azureml/ExperimentRun/dcid.run-1/model", map[string]string{azureml.PropDigest: digest, azureml.PropFormat: "onnx"})
	if _, err := h.reg.Get(ctx, "bearing-xgb", "1"); err == nil || !strings.Contains(err.Error(), `an mlflow_model is format "mlflow"`) {
		t.Fatalf("mlflow_model with format onnx: %v", err)
	}
}

// An mlflow_model that is a pickle downloads, and fails validation with
// the reason, before any site is touched.
func TestMLflowModelAssetPickle(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	digest := upload(t, h, goldenMLflow+"sklearn_pickle", "runs/2/model")
	putAsset(h, "sk", azureml.AssetMLflow, "runs/2/model/", map[string]string{azureml.PropDigest: digest})
	rep, err := (&activities.Cloud{Registry: h.reg}).ValidateModel(ctx, modelfleet.ModelRef{Name: "sk", Version: "1"})
	if err != nil || rep.Result.Passed || !strings.Contains(rep.Result.Note, "arbitrary code") {
		t.Fatalf("ValidateModel = %+v, %v", rep.Result, err)
	}
}

// A custom_model folder (its modelUri without a trailing slash, as Azure
// ML records it) with one model file downloads that file; with two it is
// refused naming them and the property that picks one.
func TestCustomModelFolder(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	model, err := os.ReadFile(modelFile)
	if err != nil {
		t.Fatal(err)
	}
	h.store.Blobs["/"+bucket+"/LocalUpload/abc/model/model.txt"] = model
	h.store.Blobs["/"+bucket+"/LocalUpload/abc/model/notes.md"] = []byte("# trained on line 4")
	putAsset(h, "bf", azureml.AssetCustom, "LocalUpload/abc/model", map[string]string{azureml.PropDigest: digestOf(t, modelFile)})
	m, err := h.reg.Get(ctx, "bf", "1")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := h.reg.Download(ctx, m.ArtifactURL, m.Digest, &buf); err != nil || !bytes.Equal(buf.Bytes(), model) {
		t.Fatalf("Download = %d bytes, %v; want model.txt", buf.Len(), err)
	}
	h.store.Blobs["/"+bucket+"/LocalUpload/abc/model/model.onnx"] = []byte("x")
	_, err = h.reg.Download(ctx, m.ArtifactURL, m.Digest, &buf)
	if err == nil || !strings.Contains(err.Error(), "holds 2 model files (model.onnx, model.txt)") || !strings.Contains(err.Error(), azureml.PropArtifact) {
		t.Fatalf("two model files: %v", err)
	}
	// With the property, the named file.
	putAsset(h, "bf", azureml.AssetCustom, "LocalUpload/abc/model", map[string]string{azureml.PropDigest: digestOf(t, modelFile), azureml.PropArtifact: "model.txt"})
	if m, err = h.reg.Get(ctx, "bf", "1"); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if _, err := h.reg.Download(ctx, m.ArtifactURL, m.Digest, &buf); err != nil || !bytes.Equal(buf.Bytes(), model) {
		t.Fatalf("Download with %s = %v", azureml.PropArtifact, err)
	}
	// Nothing there at all: not found.
	if _, err := h.reg.Download(ctx, "azureml://datastores/workspaceblobstore/paths/none/model", m.Digest, &buf); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("missing artifact: %v", err)
	}
}

// A triton_model version is a Triton model repository served by the Triton
// server the sites declare: Get maps it to format oip with its server
// block, Download archives the folder exactly as `modelfleet model register
// --file <dir>` does (mlflow.ArchiveDir), and without a server block it is
// refused saying what to set. Another asset type is refused by name; an
// inventory (List) shows them all.
func TestTritonModelAsset(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	repo := map[string]string{"detector/config.pbtxt": "name: \"detector\"\nbackend: \"onnxruntime\"\n", "detector/1/model.onnx": "onnx bytes"}
	dir := t.TempDir()
	for name, content := range repo {
		h.store.Blobs["/"+bucket+"/triton/repo/"+name] = []byte(content)
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var local bytes.Buffer
	if err := mlflow.ArchiveDir(dir, &local); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(local.Bytes())
	digest := "sha256:" + hex.EncodeToString(sum[:])
	server := `{"name":"triton","model":"detector","task":"binary"}`
	putAsset(h, "detector", azureml.AssetTriton, "triton/repo", map[string]string{azureml.PropDigest: digest, modelfleet.PropServer: server})
	m, err := h.reg.Get(ctx, "detector", "1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := modelfleet.ServerOf(&m)
	if m.Format != modelfleet.FormatOIP || !strings.HasSuffix(m.ArtifactURL, "/triton/repo/") || err != nil || srv == nil || srv.Model != "detector" {
		t.Fatalf("Get = format %q, artifact %q, server %+v (%v)", m.Format, m.ArtifactURL, srv, err)
	}
	var buf bytes.Buffer
	if _, err := h.reg.Download(ctx, m.ArtifactURL, m.Digest, &buf); err != nil || !bytes.Equal(buf.Bytes(), local.Bytes()) {
		t.Fatalf("Download = %d bytes, %v: want the local archive's bytes", buf.Len(), err)
	}
	putAsset(h, "detector", azureml.AssetTriton, "triton/repo", map[string]string{azureml.PropDigest: digest})
	if _, err := h.reg.Get(ctx, "detector", "1"); modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), `set the version's property "modelfleet.server"`) {
		t.Fatalf("Get triton_model without a server block: %v", err)
	}
	putAsset(h, "other", "tensorflow_saved_model", "tf/1", map[string]string{azureml.PropDigest: "sha256:" + strings.Repeat("1", 64)})
	if _, err := h.reg.Get(ctx, "other", "1"); err == nil || !strings.Contains(err.Error(), `asset type "tensorflow_saved_model" is not supported`) {
		t.Fatalf("Get of another asset type: %v", err)
	}
	all, err := h.reg.List(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("List = %+v, %v", all, err)
	}
}
