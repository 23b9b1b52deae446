package azureml_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/internal/amlfake"
	"github.com/modelfleet/modelfleet/registry/azureml"
)

var (
	_ modelfleet.Registry        = (*azureml.Registry)(nil)
	_ modelfleet.RetrainRegistry = (*azureml.Registry)(nil)
)

var features = []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}

const (
	modelFile      = "../../examples/bearing-failure/model.txt"
	validationFile = "../../examples/bearing-failure/validation.csv"
)

func digestOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func bearing(version string) modelfleet.Model {
	return modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: version}, Format: modelfleet.FormatLightGBM,
		Features:   features,
		Tags:       map[string]string{"team": "maintenance", activities.TagRetrainJob: "retrain-bf-1"},
		Properties: map[string]string{modelfleet.PropGateMargin: "0.005"},
		Validation: &modelfleet.ValidationSpec{Metric: modelfleet.MetricAUC, Threshold: 0.8},
	}
}

// Register uploads both files as block blobs to the workspace's datastore
// (resolved from its ARM definition) with a storage token, and creates the
// model version with the mapped properties; Get reads it back as it went
// in, Download verifies each file's digest, and the real ValidateModel
// activity validates the version end to end.
func TestRegisterGetDownloadValidate(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()

	m, created, err := h.reg.Register(ctx, bearing("2"), modelFile, validationFile)
	if err != nil || !created {
		t.Fatalf("Register = %v, %v", created, err)
	}
	art, data := digestOf(t, modelFile), digestOf(t, validationFile)
	if m.Digest != art || m.Validation == nil || m.Validation.DataDigest != data {
		t.Fatalf("registered %+v", m)
	}

	// The blobs, as the storage service saw them.
	reqs := h.store.Requests()
	if len(reqs) != 2 {
		t.Fatalf("storage requests %+v, want two PUTs", reqs)
	}
	wantPaths := []string{
		"/" + bucket + "/modelfleet/models/bearing-failure/2/" + strings.TrimPrefix(art, "sha256:") + "/model.txt",
		"/" + bucket + "/modelfleet/models/bearing-failure/2/validation/" + strings.TrimPrefix(data, "sha256:") + "/validation.csv",
	}
	for i, r := range reqs {
		if r.Method != http.MethodPut || r.Host != host || r.Path != wantPaths[i] || r.BlobType != "BlockBlob" || r.Version == "" {
			t.Errorf("request %d: %+v, want PUT %s%s of a block blob", i, r, host, wantPaths[i])
		}
		if r.Auth != "Bearer tok-"+azureml.StorageScope {
			t.Errorf("request %d authorization %q, want a token for %s", i, r.Auth, azureml.StorageScope)
		}
	}
	if reqs[0].Meta != art {
		t.Errorf("artifact blob metadata %q, want its digest", reqs[0].Meta)
	}
	if got, _ := os.ReadFile(modelFile); !bytes.Equal(h.store.Blobs[wantPaths[0]], got) {
		t.Error("artifact blob differs from the file")
	}

	// The model version, as Azure ML stored it.
	mv, ok := h.ws.ModelVersion("bearing-failure", "2")
	if !ok {
		t.Fatal("no model version bearing-failure:2 in the workspace")
	}
	p := mv.Properties
	wantURI := "azureml://subscriptions/" + sub + "/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore/paths/modelfleet/models/bearing-failure/2/" + strings.TrimPrefix(art, "sha256:") + "/model.txt"
	if got := *p.ModelURI; got != wantURI {
		t.Errorf("modelUri %s, want %s", got, wantURI)
	}
	wantProps := map[string]string{
		"modelfleet.digest": art, "modelfleet.format": "lightgbm", "modelfleet.size": "107243",
		"modelfleet.features":          `["vibration_rms_mm_s","vibration_peak_g","temperature_c","speed_rpm","load_pct","bearing_age_h"]`,
		"modelfleet.validation.digest": data, "modelfleet.validation.metric": "auc", "modelfleet.validation.threshold": "0.8",
		"modelfleet.validation.uri": "azureml://subscriptions/" + sub + "/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore/paths" + strings.TrimPrefix(wantPaths[1], "/"+bucket),
		modelfleet.PropGateMargin:   "0.005",
	}
	if got := strs(p.Properties); !reflect.DeepEqual(got, wantProps) {
		t.Errorf("properties\n got %v\nwant %v", got, wantProps)
	}
	if got := strs(p.Tags); got["team"] != "maintenance" || got[activities.TagRetrainJob] != "retrain-bf-1" {
		t.Errorf("tags %v", got)
	}

	got, err := h.reg.Get(ctx, "bearing-failure", "2")
	if err != nil {
		t.Fatal(err)
	}
	want := bearing("2")
	want.Digest, want.Size, want.ArtifactURL, want.CreatedAt = art, 107243, wantURI, "2026-11-28T10:00:00Z"
	want.Validation.DataDigest, want.Validation.DataURL = data, wantProps["modelfleet.validation.uri"]
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get\n got %+v\nwant %+v", got, want)
	}

	var buf bytes.Buffer
	if n, err := h.reg.Download(ctx, got.ArtifactURL, got.Digest, &buf); err != nil || n != 107243 {
		t.Fatalf("Download artifact = %d, %v", n, err)
	}
	// The datastore was read once, then remembered.
	if n := h.ws.Count("GET datastore"); n != 1 {
		t.Errorf("datastore read %d times", n)
	}

	// The cloud worker's validation, unchanged, on this registry.
	report, err := (&activities.Cloud{Registry: h.reg}).ValidateModel(ctx, got.ModelRef)
	if err != nil {
		t.Fatal(err)
	}
	if !report.Result.Passed || report.Result.Rows == 0 || report.Result.Metric != "auc" {
		t.Errorf("validation %+v, want passed on the validation set", report.Result)
	}
}

// Registering the same version again is a no-op (no upload, no PUT); the
// same version with another artifact, schema or gate is a conflict.
func TestRegisterIdempotent(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	if _, _, err := h.reg.Register(ctx, bearing("3"), modelFile, validationFile); err != nil {
		t.Fatal(err)
	}
	uploads, puts := len(h.store.Requests()), h.ws.Count("PUT")

	again := bearing("3")
	again.Tags = map[string]string{"other": "tags"} // informational: the stored ones stand
	m, created, err := h.reg.Register(ctx, again, modelFile, validationFile)
	if err != nil || created || m.Tags["team"] != "maintenance" {
		t.Fatalf("again: %+v, %v, %v; want the stored version, not created", m, created, err)
	}

	other := filepath.Join(t.TempDir(), "model.txt")
	if err := os.WriteFile(other, []byte("tree\nother model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = h.reg.Register(ctx, bearing("3"), other, validationFile)
	if modelfleet.ErrorCode(err) != modelfleet.ECONFLICT || !strings.Contains(err.Error(), "digest") {
		t.Errorf("other artifact: %v, want a conflict naming the digest", err)
	}
	gate := bearing("3")
	gate.Validation.Threshold = 0.9
	if _, _, err := h.reg.Register(ctx, gate, modelFile, validationFile); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("other threshold: %v, want a conflict", err)
	}
	if n, p := len(h.store.Requests()), h.ws.Count("PUT"); n != uploads || p != puts {
		t.Errorf("uploads %d->%d, PUTs %d->%d: a registration that exists must not write", uploads, n, puts, p)
	}
}

// A 409 from Azure ML (another registration won the race): the same
// content is this registration; other content is a conflict.
func TestRegisterRace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		their string // the artifact they registered
		code  string
	}{
		{"same content", modelFile, ""},
		{"other content", "", modelfleet.ECONFLICT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, azureml.Config{}, nil)
			ctx := context.Background()
			theirs := newHarness(t, azureml.Config{}, nil)
			path := tc.their
			if path == "" {
				path = filepath.Join(t.TempDir(), "model.txt")
				os.WriteFile(path, []byte("another model"), 0o644)
			}
			if _, _, err := theirs.reg.Register(ctx, bearing("4"), path, validationFile); err != nil {
				t.Fatal(err)
			}
			// Theirs lands just before this PUT, which then meets a 409.
			h.ws.FailNextAfter("PUT model bearing-failure/4", http.StatusConflict, func() {
				mv, _ := theirs.ws.ModelVersion("bearing-failure", "4")
				h.ws.PutModelVersion("bearing-failure", "4", mv)
			})
			m, created, err := h.reg.Register(ctx, bearing("4"), modelFile, validationFile)
			if modelfleet.ErrorCode(err) != tc.code {
				t.Fatalf("Register = %v, want code %q", err, tc.code)
			}
			if err == nil && (created || m.Digest != digestOf(t, modelFile)) {
				t.Errorf("Register = %+v, created %v; want theirs, not created", m, created)
			}
		})
	}
}

// Get refuses, naming what is missing, a version that a release cannot
// use; 404 is ENOTFOUND.
func TestGetStrict(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name  string
		props map[string]*string
		uri   string
		want  string
	}{
		{"registered elsewhere", nil, "azureml://datastores/workspaceblobstore/paths/x/model.txt", `property "modelfleet.digest"`},
		{"bad digest", map[string]*string{"modelfleet.digest": to.Ptr("md5:1")}, "azureml://datastores/d/paths/m", `"modelfleet.digest" is "md5:1"`},
		{"no uri", map[string]*string{"modelfleet.digest": to.Ptr(digest)}, "", "modelUri is empty"},
		{"half a gate", map[string]*string{"modelfleet.digest": to.Ptr(digest), "modelfleet.validation.metric": to.Ptr("auc")}, "azureml://datastores/d/paths/m",
			`missing "modelfleet.validation.uri", "modelfleet.validation.digest", "modelfleet.validation.threshold"`},
		{"features not json", map[string]*string{"modelfleet.digest": to.Ptr(digest), "modelfleet.features": to.Ptr("a,b")}, "azureml://datastores/d/paths/m", `"modelfleet.features" is not a JSON array`},
		{"unknown format", map[string]*string{"modelfleet.digest": to.Ptr(digest), "modelfleet.format": to.Ptr("pmml")}, "azureml://datastores/d/paths/m", `format "pmml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &ml.ModelVersionProperties{Properties: tc.props}
			if tc.uri != "" {
				p.ModelURI = to.Ptr(tc.uri)
			}
			h.ws.PutModelVersion("m", "1", ml.ModelVersion{Properties: p})
			_, err := h.reg.Get(ctx, "m", "1")
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"m" version "1"`) {
				t.Errorf("Get = %v, want EINVALID naming %s", err, tc.want)
			}
		})
	}
	// A folder model: the artifact is named inside it; the format defaults.
	h.ws.PutModelVersion("m", "2", ml.ModelVersion{Properties: &ml.ModelVersionProperties{ModelURI: to.Ptr("azureml://datastores/d/paths/runs/7/model/"),
		Properties: map[string]*string{"modelfleet.digest": to.Ptr(digest), "modelfleet.artifact": to.Ptr("model.txt"), "owner": to.Ptr("me")}}})
	m, err := h.reg.Get(ctx, "m", "2")
	if err != nil || m.ArtifactURL != "azureml://datastores/d/paths/runs/7/model/model.txt" || m.Format != "lightgbm" || !reflect.DeepEqual(m.Properties, map[string]string{"owner": "me"}) {
		t.Errorf("folder model: %+v, %v", m, err)
	}

	if _, err := h.reg.Get(ctx, "m", "9"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("missing version: %v, want ENOTFOUND", err)
	}
	if _, err := h.reg.Get(ctx, "no model", "1"); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad name: %v, want EINVALID", err)
	}
}

// List walks every container (one a page here) and its versions, keeps
// versions registered elsewhere, orders versions numerically.
func TestList(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	if ms, err := h.reg.List(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("empty workspace: %v, %v", ms, err)
	}
	for _, v := range []string{"10", "2", "1"} {
		if _, _, err := h.reg.Register(ctx, bearing(v), modelFile, validationFile); err != nil {
			t.Fatal(err)
		}
	}
	h.ws.PutModelVersion("another", "1", ml.ModelVersion{Properties: &ml.ModelVersionProperties{ModelURI: to.Ptr("azureml://jobs/j/outputs/artifacts/paths/model/"), Tags: map[string]*string{"k": to.Ptr("v")}}})
	ms, err := h.reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, m := range ms {
		refs = append(refs, m.ModelRef.String())
	}
	if want := []string{"another:1", "bearing-failure:1", "bearing-failure:2", "bearing-failure:10"}; !reflect.DeepEqual(refs, want) {
		t.Errorf("List = %v, want %v", refs, want)
	}
	if ms[0].Digest != "" || ms[0].Tags["k"] != "v" || ms[1].Tags[activities.TagRetrainJob] != "retrain-bf-1" {
		t.Errorf("List entries %+v", ms[:2])
	}
}

// Download: digests are verified; blob errors map to the domain's codes;
// the storage token goes only to blob endpoints.
func TestDownload(t *testing.T) {
	h := newHarness(t, azureml.Config{}, nil)
	ctx := context.Background()
	content := []byte("label,x\n1,2\n")
	sum := sha256.Sum256(content)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	h.store.Blobs["/"+bucket+"/data/holdout.csv"] = content
	h.store.Blobs["/other/data/holdout.csv"] = content

	for _, u := range []string{
		"azureml://datastores/workspaceblobstore/paths/data/holdout.csv",
		"azureml://subscriptions/" + sub + "/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore/paths/data/holdout.csv",
		"https://" + host + "/other/data/holdout.csv",
	} {
		var buf bytes.Buffer
		if n, err := h.reg.Download(ctx, u, digest, &buf); err != nil || n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
			t.Errorf("Download(%s) = %d, %v", u, n, err)
		}
	}
	u := "azureml://datastores/workspaceblobstore/paths/data/holdout.csv"
	wrong := "sha256:" + strings.Repeat("0", 64)
	if _, err := h.reg.Download(ctx, u, wrong, io.Discard); !errors.Is(err, azureml.ErrDigestMismatch) {
		t.Errorf("wrong digest: %v, want ErrDigestMismatch", err)
	}
	if _, err := h.reg.Download(ctx, u, "sha256:x", io.Discard); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad digest: %v", err)
	}

	before := len(h.store.Requests())
	for _, tc := range []struct{ url, code, want string }{
		{"azureml://datastores/workspaceblobstore/paths/data/missing.csv", modelfleet.ENOTFOUND, "BlobNotFound"},
		{"azureml://datastores/nope/paths/a.csv", modelfleet.ENOTFOUND, `datastore "nope"`},
		{"azureml://datastores/" + amlfake.FileDatastore + "/paths/a.csv", modelfleet.EINVALID, "AzureFile"},
		{"azureml://subscriptions/11111111-1111-1111-1111-111111111111/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore/paths/a", modelfleet.EINVALID, "subscription"},
		{"azureml://jobs/j/outputs/artifacts/paths/model.txt", modelfleet.EINVALID, "only datastore paths"},
		{"https://attacker.example.com/" + bucket + "/a?sig=secret", modelfleet.EINVALID, "not an Azure Storage blob endpoint"},
		{"https://" + account + ".blob.core.windows.net.attacker.example/x/a", modelfleet.EINVALID, "not an Azure Storage blob endpoint"},
		{"http://" + host + "/" + bucket + "/a", modelfleet.EINVALID, "want azureml://"},
	} {
		_, err := h.reg.Download(ctx, tc.url, digest, io.Discard)
		if modelfleet.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Download(%s) = %v, want %s naming %s", tc.url, err, tc.code, tc.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error carries the URL's query: %v", err)
		}
	}
	// The missing blob's GET, then a listing of it as a folder (a
	// custom_model folder's modelUri has no trailing "/").
	if n := len(h.store.Requests()) - before; n != 2 {
		t.Errorf("%d requests reached storage, want only the missing blob's and its folder listing", n)
	}

	h.store.Status["/"+bucket+"/data/holdout.csv"] = http.StatusForbidden
	if _, err := h.reg.Download(ctx, u, digest, io.Discard); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED || !strings.Contains(err.Error(), "Storage Blob Data") {
		t.Errorf("forbidden: %v, want EUNAUTHORIZED naming the role", err)
	}
	h.store.Status["/"+bucket+"/data/holdout.csv"] = http.StatusServiceUnavailable
	if _, err := h.reg.Download(ctx, u, digest, io.Discard); err == nil || modelfleet.ErrorCode(err) != modelfleet.EINTERNAL {
		t.Errorf("server busy: %v, want a retryable error", err)
	}
	for _, s := range h.cred.scopes {
		if s != azureml.StorageScope && s != "https://management.core.windows.net//.default" {
			t.Errorf("token asked for scope %q", s)
		}
	}
}

// A ContainerURL given in the configuration is used as is: no datastore
// read; its host may be anything (a private endpoint's name).
func TestContainerURL(t *testing.T) {
	h := newHarness(t, azureml.Config{ContainerURL: "https://store.privatelink.example/models/", Datastore: "models", PathPrefix: "/mf/"}, nil)
	ctx := context.Background()
	m, _, err := h.reg.Register(ctx, bearing("1"), modelFile, validationFile)
	if err != nil {
		t.Fatal(err)
	}
	r := h.store.Requests()[0]
	if r.Host != "store.privatelink.example" || !strings.HasPrefix(r.Path, "/models/mf/bearing-failure/1/") {
		t.Errorf("uploaded to %s%s", r.Host, r.Path)
	}
	if !strings.Contains(m.ArtifactURL, "/datastores/models/paths/mf/bearing-failure/1/") {
		t.Errorf("modelUri %s", m.ArtifactURL)
	}
	if _, err := h.reg.Download(ctx, m.ArtifactURL, m.Digest, io.Discard); err != nil {
		t.Error(err)
	}
	if n := h.ws.Count("GET datastore"); n != 0 {
		t.Errorf("datastore read %d times", n)
	}
	if _, err := azureml.New(azureml.Config{SubscriptionID: sub, ResourceGroup: rg, Workspace: ws, Credential: h.cred, ContainerURL: "http://x/c"}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("http container url: %v", err)
	}
}

// A short Retry-After is waited out by the SDK; a long one comes back as
// modelfleet.ThrottledError, which the activities turn into a retry after
// that delay. 401/403 and other errors are classified.
func TestARMErrors(t *testing.T) {
	th := amlfake.NewThrottle(1, "1", nil)
	h := newHarness(t, azureml.Config{}, th.Wrap)
	ctx := context.Background()
	start := time.Now()
	if _, _, err := h.reg.Register(ctx, bearing("1"), modelFile, validationFile); err != nil {
		t.Fatalf("through one 429: %v", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %s, want Retry-After's 1s", el)
	}

	th.Set(100, "120")
	_, err := h.reg.Get(ctx, "bearing-failure", "1")
	var te *modelfleet.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != 120*time.Second {
		t.Fatalf("throttled: %v, want a ThrottledError of 120s", err)
	}
	if _, err := h.reg.List(ctx); !errors.As(err, &te) {
		t.Errorf("list throttled: %v", err)
	}
	th.Set(0, "")

	for status, code := range map[int]string{http.StatusForbidden: modelfleet.EUNAUTHORIZED, http.StatusBadRequest: modelfleet.EINVALID, http.StatusInternalServerError: modelfleet.EINTERNAL} {
		h.ws.FailNext("GET model bearing-failure/1", status)
		_, err := h.reg.Get(ctx, "bearing-failure", "1")
		if modelfleet.ErrorCode(err) != code {
			t.Errorf("%d: %v, want %s", status, err, code)
		}
	}
	h.ws.FailNext("PUT model bearing-failure/5", http.StatusForbidden)
	if _, _, err := h.reg.Register(ctx, bearing("5"), modelFile, validationFile); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED || !strings.Contains(err.Error(), "AzureML Data Scientist") {
		t.Errorf("forbidden PUT: %v", err)
	}
	// A blob upload refused: no model version is created.
	h.store.Status["/"+bucket+"/modelfleet/models/bearing-failure/6/"+strings.TrimPrefix(digestOf(t, modelFile), "sha256:")+"/model.txt"] = http.StatusForbidden
	if _, _, err := h.reg.Register(ctx, bearing("6"), modelFile, validationFile); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
		t.Errorf("upload refused: %v", err)
	}
	if _, ok := h.ws.ModelVersion("bearing-failure", "6"); ok {
		t.Error("version created without its artifact")
	}
}

func strs(m map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = *v
	}
	return out
}
