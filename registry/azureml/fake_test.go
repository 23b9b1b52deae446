package azureml_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"

	"github.com/modelfleet/modelfleet/registry/azureml"
)

const (
	sub     = "00000000-0000-0000-0000-000000000000"
	rg      = "rg"
	ws      = "ws"
	account = "mlwstore"
	bucket  = "azureml-blobstore-1234"
	host    = account + ".blob.core.windows.net"
)

// workspace is an Azure ML workspace's model registry and datastores behind
// the SDK's generated fake servers: the real ARM clients, pipeline and
// retry policy run against it.
type workspace struct {
	mu         sync.Mutex
	versions   map[string]map[string]ml.ModelVersion // model -> version -> body
	datastores map[string]ml.DatastorePropertiesClassification
	calls      []string
	// fail answers the next call of that name ("PUT m/1", "GET m/1") with
	// an HTTP status; race runs just before that PUT's failure, to store
	// what a concurrent registration stored.
	fail map[string]int
	race func()
}

func newWorkspace() *workspace {
	return &workspace{versions: map[string]map[string]ml.ModelVersion{}, fail: map[string]int{},
		datastores: map[string]ml.DatastorePropertiesClassification{
			"workspaceblobstore": &ml.AzureBlobDatastore{DatastoreType: to.Ptr(ml.DatastoreTypeAzureBlob),
				AccountName: to.Ptr(account), ContainerName: to.Ptr(bucket), Endpoint: to.Ptr("core.windows.net"), Protocol: to.Ptr("https"),
				Credentials: &ml.AccountKeyDatastoreCredentials{CredentialsType: to.Ptr(ml.CredentialsTypeAccountKey)}},
			"files": &ml.AzureFileDatastore{DatastoreType: to.Ptr(ml.DatastoreTypeAzureFile), AccountName: to.Ptr(account), FileShareName: to.Ptr("share"),
				Credentials: &ml.AccountKeyDatastoreCredentials{CredentialsType: to.Ptr(ml.CredentialsTypeAccountKey)}},
		}}
}

func (w *workspace) record(call string) int {
	w.calls = append(w.calls, call)
	if s, ok := w.fail[call]; ok {
		delete(w.fail, call)
		return s
	}
	return 0
}

func (w *workspace) count(prefix string) int {
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

func (w *workspace) put(name, version string, mv ml.ModelVersion) {
	if w.versions[name] == nil {
		w.versions[name] = map[string]ml.ModelVersion{}
	}
	mv.Name = to.Ptr(version)
	mv.ID = to.Ptr("/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.MachineLearningServices/workspaces/" + ws + "/models/" + name + "/versions/" + version)
	mv.SystemData = &ml.SystemData{CreatedAt: to.Ptr(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))}
	w.versions[name][version] = mv
}

func (w *workspace) server() *fake.ServerFactory {
	return &fake.ServerFactory{
		ModelContainersServer: fake.ModelContainersServer{
			NewListPager: func(_, _ string, _ *ml.ModelContainersClientListOptions) (resp azfake.PagerResponder[ml.ModelContainersClientListResponse]) {
				w.mu.Lock()
				defer w.mu.Unlock()
				w.record("LIST models")
				var names []string
				for n := range w.versions {
					names = append(names, n)
				}
				slices.Sort(names)
				// one container a page: the client must follow the pages
				for _, n := range names {
					resp.AddPage(http.StatusOK, ml.ModelContainersClientListResponse{ModelContainerResourceArmPaginatedResult: ml.ModelContainerResourceArmPaginatedResult{
						Value: []*ml.ModelContainer{{Name: to.Ptr(n), Properties: &ml.ModelContainerProperties{}}}}}, nil)
				}
				if len(names) == 0 {
					resp.AddPage(http.StatusOK, ml.ModelContainersClientListResponse{}, nil)
				}
				return
			},
		},
		ModelVersionsServer: fake.ModelVersionsServer{
			Get: func(_ context.Context, _, _, name, version string, _ *ml.ModelVersionsClientGetOptions) (resp azfake.Responder[ml.ModelVersionsClientGetResponse], errResp azfake.ErrorResponder) {
				w.mu.Lock()
				defer w.mu.Unlock()
				if s := w.record("GET " + name + "/" + version); s != 0 {
					errResp.SetResponseError(s, http.StatusText(s))
					return
				}
				mv, ok := w.versions[name][version]
				if !ok {
					errResp.SetResponseError(http.StatusNotFound, "UserError")
					return
				}
				resp.SetResponse(http.StatusOK, ml.ModelVersionsClientGetResponse{ModelVersion: mv}, nil)
				return
			},
			CreateOrUpdate: func(_ context.Context, _, _, name, version string, body ml.ModelVersion, _ *ml.ModelVersionsClientCreateOrUpdateOptions) (resp azfake.Responder[ml.ModelVersionsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
				w.mu.Lock()
				defer w.mu.Unlock()
				if s := w.record("PUT " + name + "/" + version); s != 0 {
					if w.race != nil {
						w.race()
					}
					errResp.SetResponseError(s, http.StatusText(s))
					return
				}
				if body.Properties == nil || body.Properties.ModelURI == nil {
					errResp.SetResponseError(http.StatusBadRequest, "UserError")
					return
				}
				if _, ok := w.versions[name][version]; ok {
					// Azure ML's versions are immutable but for tags.
					errResp.SetResponseError(http.StatusConflict, "UserError")
					return
				}
				w.put(name, version, body)
				resp.SetResponse(http.StatusCreated, ml.ModelVersionsClientCreateOrUpdateResponse{ModelVersion: w.versions[name][version]}, nil)
				return
			},
			NewListPager: func(_, _, name string, _ *ml.ModelVersionsClientListOptions) (resp azfake.PagerResponder[ml.ModelVersionsClientListResponse]) {
				w.mu.Lock()
				defer w.mu.Unlock()
				w.record("LIST " + name)
				var page []*ml.ModelVersion
				for _, mv := range w.versions[name] {
					page = append(page, to.Ptr(mv))
				}
				resp.AddPage(http.StatusOK, ml.ModelVersionsClientListResponse{ModelVersionResourceArmPaginatedResult: ml.ModelVersionResourceArmPaginatedResult{Value: page}}, nil)
				return
			},
		},
		DatastoresServer: fake.DatastoresServer{
			Get: func(_ context.Context, _, _, name string, _ *ml.DatastoresClientGetOptions) (resp azfake.Responder[ml.DatastoresClientGetResponse], errResp azfake.ErrorResponder) {
				w.mu.Lock()
				defer w.mu.Unlock()
				w.record("GET datastore " + name)
				d, ok := w.datastores[name]
				if !ok {
					errResp.SetResponseError(http.StatusNotFound, "UserError")
					return
				}
				resp.SetResponse(http.StatusOK, ml.DatastoresClientGetResponse{Datastore: ml.Datastore{Name: to.Ptr(name), Properties: d}}, nil)
				return
			},
		},
	}
}

// storage is Azure Blob Storage's Get Blob and Put Blob over TLS, checking
// what the service checks: a bearer token, x-ms-version, a block blob type.
type storage struct {
	mu    sync.Mutex
	blobs map[string][]byte // "/<container>/<path>" -> content
	reqs  []blobReq
	// status answers every request for that path with an HTTP status and
	// x-ms-error-code.
	status map[string]int
}

type blobReq struct {
	Method, Host, Path, Auth, Version, BlobType, Meta string
}

func (s *storage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, blobReq{r.Method, r.Host, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("x-ms-version"), r.Header.Get("x-ms-blob-type"), r.Header.Get("x-ms-meta-modelfleet_sha256")})
	fail := func(status int, code string) {
		w.Header().Set("x-ms-error-code", code)
		w.WriteHeader(status)
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>`+code+`</Code><Message>x</Message></Error>`)
	}
	switch {
	case r.Header.Get("Authorization") == "":
		fail(http.StatusUnauthorized, "NoAuthenticationInformation")
		return
	case r.Header.Get("x-ms-version") == "":
		fail(http.StatusBadRequest, "MissingRequiredHeader")
		return
	case s.status[r.URL.Path] != 0:
		fail(s.status[r.URL.Path], map[int]string{403: "AuthorizationPermissionMismatch", 503: "ServerBusy"}[s.status[r.URL.Path]])
		return
	}
	switch r.Method {
	case http.MethodGet:
		b, ok := s.blobs[r.URL.Path]
		if !ok {
			fail(http.StatusNotFound, "BlobNotFound")
			return
		}
		w.Header().Set("x-ms-blob-type", "BlockBlob")
		w.Write(b)
	case http.MethodPut:
		if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
			fail(http.StatusBadRequest, "MissingRequiredHeader")
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil || int64(len(b)) != r.ContentLength {
			fail(http.StatusBadRequest, "InvalidInput")
			return
		}
		s.blobs[r.URL.Path] = b
		w.WriteHeader(http.StatusCreated)
	default:
		fail(http.StatusMethodNotAllowed, "UnsupportedHttpVerb")
	}
}

func (s *storage) requests() []blobReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// tokens is a credential that records the scopes asked for.
type tokens struct {
	mu     sync.Mutex
	scopes []string
}

func (c *tokens) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = append(c.scopes, o.Scopes...)
	return azcore.AccessToken{Token: "tok-" + strings.Join(o.Scopes, ","), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// redirect sends every request to the local storage server, keeping the
// Host the client addressed, as a DNS entry pointing there would.
type redirect struct{ srv *httptest.Server }

func (r redirect) Do(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Host = strings.TrimPrefix(r.srv.URL, "https://")
	out.Host = req.URL.Host
	return r.srv.Client().Transport.(*http.Transport).RoundTrip(out)
}

type harness struct {
	ws    *workspace
	store *storage
	cred  *tokens
	reg   *azureml.Registry
}

// newHarness wires a Registry to the fake workspace and the local storage;
// wrap, if set, sits between the ARM pipeline and the fake (to inject raw
// responses).
func newHarness(t *testing.T, cfg azureml.Config, wrap func(policy.Transporter) policy.Transporter) *harness {
	t.Helper()
	h := &harness{ws: newWorkspace(), store: &storage{blobs: map[string][]byte{}, status: map[string]int{}}, cred: &tokens{}}
	srv := httptest.NewUnstartedServer(h.store)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var tr policy.Transporter = fake.NewServerFactoryTransport(h.ws.server())
	if wrap != nil {
		tr = wrap(tr)
	}
	cfg.SubscriptionID, cfg.ResourceGroup, cfg.Workspace = sub, rg, ws
	cfg.Credential = h.cred
	cfg.ClientOptions = &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: tr}}
	cfg.BlobOptions = &policy.ClientOptions{Transport: redirect{srv}, Retry: policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond}}
	reg, err := azureml.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.reg = reg
	return h
}
