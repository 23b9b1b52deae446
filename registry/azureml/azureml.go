// Package azureml is modelfleet's model registry in Azure mode: model
// versions are Azure Machine Learning workspace model versions (ARM,
// armmachinelearning/v4 ModelContainers and ModelVersions), their artifacts
// and validation data files in the workspace's blob datastore, read and
// written over the Blob REST API with the worker's Entra ID credential.
//
// It is the activities' Registry and RetrainRegistry, as registry.Client is
// for the embedded registry. Registering a version here is what makes Azure
// ML publish ModelRegistered through Event Grid, which starts its release.
// The mapping between a model version's properties and modelfleet.Model is
// in mapping.go and docs/azure.md.
package azureml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/azureblob"
)

// Defaults of Config.
const (
	DefaultDatastore  = "workspaceblobstore" // every workspace has it
	DefaultPathPrefix = "modelfleet/models"
)

// DefaultBlobSuffixes are the storage DNS suffixes of Azure's public,
// China and US Government clouds.
var DefaultBlobSuffixes = azureblob.DefaultSuffixes

// Config names the workspace and how to reach it.
type Config struct {
	SubscriptionID string
	ResourceGroup  string
	Workspace      string
	// Credential is used for ARM (management.azure.com) and for Blob
	// Storage (scope StorageScope).
	Credential azcore.TokenCredential
	// Datastore receives registered artifacts (default DefaultDatastore).
	// It must be an Azure Blob (or ADLS Gen2) datastore.
	Datastore string
	// ContainerURL, if set, is the datastore's blob container
	// (https://<account>.blob.core.windows.net/<container>); otherwise it
	// is read from the datastore's definition on first use.
	ContainerURL string
	// PathPrefix is where in the datastore versions are uploaded
	// (default DefaultPathPrefix): <prefix>/<name>/<version>/<sha256>/<file>.
	PathPrefix string
	// BlobSuffixes are the storage DNS suffixes the storage token may be
	// sent to (default DefaultBlobSuffixes), besides ContainerURL's host
	// and the endpoints of datastores read from the workspace.
	BlobSuffixes []string
	// ClientOptions are the ARM clients' (a fake transport in tests).
	ClientOptions *arm.ClientOptions
	// BlobOptions are the blob pipeline's (transport, retry). Nil: azcore's
	// defaults.
	BlobOptions *policy.ClientOptions
}

// Registry reads and registers model versions in one Azure ML workspace.
type Registry struct {
	cfg        Config
	containers *ml.ModelContainersClient
	versions   *ml.ModelVersionsClient
	datastores *azureblob.Datastores
	blobs      blobs
}

// New returns the registry of one workspace. It makes no request.
func New(cfg Config) (*Registry, error) {
	if cfg.SubscriptionID == "" || cfg.ResourceGroup == "" || cfg.Workspace == "" || cfg.Credential == nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: subscription, resource group, workspace and credential are required")
	}
	if cfg.Datastore == "" {
		cfg.Datastore = DefaultDatastore
	}
	if cfg.PathPrefix = strings.Trim(cfg.PathPrefix, "/"); cfg.PathPrefix == "" {
		cfg.PathPrefix = DefaultPathPrefix
	}
	if len(cfg.BlobSuffixes) == 0 {
		cfg.BlobSuffixes = DefaultBlobSuffixes
	}
	r := &Registry{cfg: cfg, datastores: &azureblob.Datastores{SubscriptionID: cfg.SubscriptionID, ResourceGroup: cfg.ResourceGroup,
		Workspace: cfg.Workspace, Suffixes: cfg.BlobSuffixes}}
	r.datastores.Classify = r.err
	if cfg.ContainerURL != "" {
		u, err := url.Parse(cfg.ContainerURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") == "" || strings.Contains(strings.Trim(u.Path, "/"), "/") {
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: container url %q: want https://<account>.blob.core.windows.net/<container>", redact(cfg.ContainerURL))
		}
		r.cfg.ContainerURL = "https://" + u.Host + "/" + strings.Trim(u.Path, "/")
		r.datastores.Pin(cfg.ResourceGroup, cfg.Workspace, cfg.Datastore, r.cfg.ContainerURL, u.Host)
	}
	var err error
	if r.containers, err = ml.NewModelContainersClient(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions); err != nil {
		return nil, fmt.Errorf("azure ml registry: %w", err)
	}
	if r.versions, err = ml.NewModelVersionsClient(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions); err != nil {
		return nil, fmt.Errorf("azure ml registry: %w", err)
	}
	if r.datastores.Client, err = ml.NewDatastoresClient(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions); err != nil {
		return nil, fmt.Errorf("azure ml registry: %w", err)
	}
	r.blobs = blobs{azureblob.New("modelfleet/registry/azureml", cfg.Credential, cfg.BlobOptions)}
	return r, nil
}

// Get returns one model version, mapped strictly: a version that lacks
// what a release needs (its digest, a readable modelUri, a complete
// validation gate) is an EINVALID error naming what is missing.
func (r *Registry) Get(ctx context.Context, name, version string) (modelfleet.Model, error) {
	if err := (modelfleet.ModelRef{Name: name, Version: version}).Validate(); err != nil {
		return modelfleet.Model{}, err
	}
	resp, err := r.versions.Get(ctx, r.cfg.ResourceGroup, r.cfg.Workspace, name, version, nil)
	if err != nil {
		return modelfleet.Model{}, r.err(fmt.Sprintf("get model %q version %q", name, version), err)
	}
	return toModel(name, version, resp.ModelVersion, true)
}

// List returns every active model version of the workspace, sorted by name
// then version (numerically where numeric). It is an inventory: versions
// not registered for modelfleet are included with what can be read of
// them (their digest may be empty); Get is what a release uses.
func (r *Registry) List(ctx context.Context) ([]modelfleet.Model, error) {
	var names []string
	pager := r.containers.NewListPager(r.cfg.ResourceGroup, r.cfg.Workspace, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, r.err("list models", err)
		}
		for _, c := range page.Value {
			if c != nil && c.Name != nil {
				names = append(names, *c.Name)
			}
		}
	}
	slices.Sort(names)
	out := []modelfleet.Model{}
	for _, name := range names {
		vs, err := r.listVersions(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

func (r *Registry) listVersions(ctx context.Context, name string) ([]modelfleet.Model, error) {
	var out []modelfleet.Model
	pager := r.versions.NewListPager(r.cfg.ResourceGroup, r.cfg.Workspace, name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, r.err(fmt.Sprintf("list versions of model %q", name), err)
		}
		for _, v := range page.Value {
			if v == nil || v.Name == nil {
				continue
			}
			m, _ := toModel(name, *v.Name, *v, false)
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b modelfleet.Model) int { return modelfleet.CompareVersions(a.Version, b.Version) })
	return out, nil
}

// Download streams the file at rawURL (an azureml:// datastore URI or an
// https blob URL) to w while hashing it, and fails with ErrDigestMismatch
// unless it hashes to digest. w has then received bad bytes. A folder URL
// (ending in "/", what Get gives an mlflow_model; or any URL with no blob
// but blobs under it, a custom_model folder) is read whole first: an MLflow model packed as mlflow.Pack does, or a
// custom_model folder's one model file (assets.go); w receives it only
// once it hashes to digest.
func (r *Registry) Download(ctx context.Context, rawURL, digest string, w io.Writer) (int64, error) {
	if !modelfleet.ValidDigest(digest) {
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "digest %q is invalid: want sha256:<64 hex digits>", digest)
	}
	if strings.HasSuffix(rawURL, "/") {
		return r.downloadFolder(ctx, rawURL, digest, w)
	}
	u, err := r.blobURL(ctx, rawURL)
	if err != nil {
		return 0, err
	}
	n, err := r.blobs.get(ctx, u, digest, w)
	if n == 0 && modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
		// Azure ML records a folder's modelUri without a trailing "/".
		if fn, ferr := r.downloadFolder(ctx, rawURL+"/", digest, w); modelfleet.ErrorCode(ferr) != modelfleet.ENOTFOUND {
			return fn, ferr
		}
	}
	if err != nil {
		return n, r.err("download "+redact(rawURL), err)
	}
	return n, nil
}

// Register uploads the artifact (and validation data) to the datastore and
// creates the model version, whose properties carry the digests, format,
// features and validation gate. It is idempotent: a version that exists
// with the same artifact, schema and gate is returned with created false;
// one that differs is an ECONFLICT. m's Digest, Size and Validation's
// DataDigest and DataURL are computed here.
func (r *Registry) Register(ctx context.Context, m modelfleet.Model, artifactPath, validationPath string) (modelfleet.Model, bool, error) {
	if m.Format == "" {
		m.Format = modelfleet.FormatLightGBM
	}
	var err error
	if m.Digest, m.Size, err = fileDigest(artifactPath); err != nil {
		return modelfleet.Model{}, false, fmt.Errorf("azure ml registry: artifact: %w", err)
	}
	var dataDigest string
	if validationPath != "" {
		if m.Validation == nil {
			return modelfleet.Model{}, false, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: validation data without a metric and threshold")
		}
		if dataDigest, _, err = fileDigest(validationPath); err != nil {
			return modelfleet.Model{}, false, fmt.Errorf("azure ml registry: validation data: %w", err)
		}
		v := *m.Validation
		v.DataDigest = dataDigest
		m.Validation = &v
	} else if m.Validation != nil {
		return modelfleet.Model{}, false, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: a validation gate needs its data file")
	}
	if err := m.Validate(); err != nil {
		return modelfleet.Model{}, false, err
	}
	ref := m.ModelRef.String()

	// A version that exists is this registration, retried, or a conflict.
	if existing, err := r.versions.Get(ctx, r.cfg.ResourceGroup, r.cfg.Workspace, m.Name, m.Version, nil); err == nil {
		old, _ := toModel(m.Name, m.Version, existing.ModelVersion, false)
		if err := modelfleet.SameContent("azure ml model", old, m); err != nil {
			return modelfleet.Model{}, false, err
		}
		return old, false, nil
	} else if !azureblob.IsStatus(err, http.StatusNotFound) {
		return modelfleet.Model{}, false, r.err("register "+ref, err)
	}

	container, err := r.container(ctx, r.cfg.ResourceGroup, r.cfg.Workspace, r.cfg.Datastore)
	if err != nil {
		return modelfleet.Model{}, false, err
	}
	dir := r.cfg.PathPrefix + "/" + m.Name + "/" + m.Version + "/"
	artPath := dir + hexOf(m.Digest) + "/" + filepath.Base(artifactPath)
	if err := r.blobs.put(ctx, container+"/"+azureblob.EscapePath(artPath), artifactPath, m.Digest, "application/octet-stream"); err != nil {
		return modelfleet.Model{}, false, r.err("register "+ref+": upload the artifact", err)
	}
	if validationPath != "" {
		dataPath := dir + "validation/" + hexOf(dataDigest) + "/" + filepath.Base(validationPath)
		if err := r.blobs.put(ctx, container+"/"+azureblob.EscapePath(dataPath), validationPath, dataDigest, "text/csv"); err != nil {
			return modelfleet.Model{}, false, r.err("register "+ref+": upload the validation data", err)
		}
		m.Validation.DataURL = r.datastoreURI(dataPath)
	}
	body, err := fromModel(m, r.datastoreURI(artPath))
	if err != nil {
		return modelfleet.Model{}, false, fmt.Errorf("azure ml registry: register %s: %w", ref, err)
	}
	resp, err := r.versions.CreateOrUpdate(ctx, r.cfg.ResourceGroup, r.cfg.Workspace, m.Name, m.Version, body, nil)
	if azureblob.IsStatus(err, http.StatusConflict) {
		// Someone registered it meanwhile: the same content is this
		// registration; other content is theirs.
		existing, gerr := r.versions.Get(ctx, r.cfg.ResourceGroup, r.cfg.Workspace, m.Name, m.Version, nil)
		if gerr != nil {
			return modelfleet.Model{}, false, r.err("register "+ref, err)
		}
		old, _ := toModel(m.Name, m.Version, existing.ModelVersion, false)
		if cerr := modelfleet.SameContent("azure ml model", old, m); cerr != nil {
			return modelfleet.Model{}, false, cerr
		}
		return old, false, nil
	}
	if err != nil {
		return modelfleet.Model{}, false, r.err("register "+ref, err)
	}
	out, _ := toModel(m.Name, m.Version, resp.ModelVersion, false)
	// Azure ML keeps an existing version's properties on a PUT that races
	// ours; what it answers is what is stored.
	if err := modelfleet.SameContent("azure ml model", out, m); err != nil {
		return modelfleet.Model{}, false, err
	}
	return out, true, nil
}

// datastoreURI is the long azureml:// form of a path on the registry's
// datastore, what Azure ML records for uploaded assets.
func (r *Registry) datastoreURI(path string) string {
	return azureblob.Path{Subscription: r.cfg.SubscriptionID, ResourceGroup: r.cfg.ResourceGroup, Workspace: r.cfg.Workspace,
		Datastore: r.cfg.Datastore, Path: path}.String()
}

// blobURL resolves an artifact URI to the https URL of its blob, and
// refuses hosts that are not Azure Storage blob endpoints.
func (r *Registry) blobURL(ctx context.Context, raw string) (string, error) {
	u, err := r.datastores.BlobURL(ctx, raw)
	return u, registryErr(err)
}

// container returns the blob container URL of a datastore.
func (r *Registry) container(ctx context.Context, rg, ws, name string) (string, error) {
	c, err := r.datastores.Container(ctx, rg, ws, name)
	return c, registryErr(err)
}

// registryErr prefixes the shared package's domain errors with the
// registry's name; others are already classified.
func registryErr(err error) error {
	var me *modelfleet.Error
	if errors.As(err, &me) && !strings.HasPrefix(me.Message, "azure ml registry: ") {
		return &modelfleet.Error{Code: me.Code, Message: "azure ml registry: " + me.Message}
	}
	return err
}

// err classifies an error from ARM or Blob Storage: 404 ENOTFOUND, 409
// ECONFLICT, 401/403 EUNAUTHORIZED, 400/422 EINVALID (none of which a
// retry fixes); throttling that outlasted the SDK's own retries becomes a
// modelfleet.ThrottledError carrying Retry-After, which the activities turn
// into a Temporal retry after that delay; anything else is transient.
func (r *Registry) err(what string, err error) error {
	var me *modelfleet.Error
	if errors.As(err, &me) {
		return &modelfleet.Error{Code: me.Code, Message: "azure ml registry: " + what + ": " + strings.TrimPrefix(me.Message, "azure ml registry: ")}
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("azure ml registry: %s: %w", what, err)
	}
	switch code := re.StatusCode; code {
	case http.StatusNotFound:
		return modelfleet.Errorf(modelfleet.ENOTFOUND, "azure ml registry: %s: not found in workspace %q (%s)", what, r.cfg.Workspace, re.ErrorCode)
	case http.StatusConflict:
		return modelfleet.Errorf(modelfleet.ECONFLICT, "azure ml registry: %s: conflict (%s)", what, re.ErrorCode)
	case http.StatusUnauthorized, http.StatusForbidden:
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "azure ml registry: %s: %d %s: the worker's identity needs AzureML Data Scientist on workspace %q", what, code, re.ErrorCode, r.cfg.Workspace)
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: %s: %d %s", what, code, re.ErrorCode)
	case http.StatusTooManyRequests:
		d := azureblob.RetryAfter(re.RawResponse)
		if d <= 0 {
			d = 30 * time.Second
		}
		return &modelfleet.ThrottledError{RetryAfter: d, Err: fmt.Errorf("azure ml registry: %s: throttled (%s)", what, re.ErrorCode)}
	}
	return fmt.Errorf("azure ml registry: %s: %w", what, err)
}

func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }
