package azureml_test

import (
	"context"
	"net/http"
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

	"github.com/modelfleet/modelfleet/azureblob/blobtest"
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

type harness struct {
	ws    *workspace
	store *blobtest.Storage
	cred  *tokens
	reg   *azureml.Registry
}

// newHarness wires a Registry to the fake workspace and the local storage;
// wrap, if set, sits between the ARM pipeline and the fake (to inject raw
// responses).
func newHarness(t *testing.T, cfg azureml.Config, wrap func(policy.Transporter) policy.Transporter) *harness {
	t.Helper()
	h := &harness{ws: newWorkspace(), store: blobtest.Start(t), cred: &tokens{}}
	var tr policy.Transporter = fake.NewServerFactoryTransport(h.ws.server())
	if wrap != nil {
		tr = wrap(tr)
	}
	cfg.SubscriptionID, cfg.ResourceGroup, cfg.Workspace = sub, rg, ws
	cfg.Credential = h.cred
	cfg.ClientOptions = &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: tr}}
	cfg.BlobOptions = h.store.Options()
	reg, err := azureml.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.reg = reg
	return h
}
