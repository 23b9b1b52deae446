// Package amlfake is an in-memory Azure ML workspace behind the fake servers
// of the armmachinelearning (v4) SDK, for tests: the real ARM clients, their
// pipeline, retry policy and pollers run against it. It holds what modelfleet
// uses of a workspace — model containers and versions, datastores, command
// jobs, computes, online endpoints and their deployments — and enforces the
// service's rules that the code under test relies on.
//
// Every request is recorded as a call named after what it does (see
// [Workspace.Calls]); [Workspace.FailNext] makes the next matching call fail
// with an HTTP status instead. Only tests import this package.
package amlfake

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4/fake"
)

// The workspace's identity, and its storage account and default
// datastores as Azure ML creates them with a workspace.
const (
	SubscriptionID = "00000000-0000-0000-0000-000000000000"
	ResourceGroup  = "rg"
	Name           = "ws"

	StorageAccount = "mlwstore"
	BlobHost       = StorageAccount + ".blob.core.windows.net"
	BlobContainer  = "azureml-blobstore-1234"
	FileShare      = "azureml-filestore-1234"
	BlobDatastore  = "workspaceblobstore" // an AzureBlob datastore on BlobContainer
	FileDatastore  = "workspacefilestore" // an AzureFile datastore on FileShare
)

const (
	resourcePrefix = "/subscriptions/" + SubscriptionID + "/resourceGroups/" + ResourceGroup +
		"/providers/Microsoft.MachineLearningServices/workspaces/" + Name
	errNotFound   = "ResourceNotFound"
	errUser       = "UserError"
	errBadRequest = "BadRequest"
)

// CreatedAt is the creation time the workspace gives every model version.
var CreatedAt = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// Workspace is one Azure ML workspace. Its methods are safe for concurrent
// use with the requests it serves.
type Workspace struct {
	mu          sync.Mutex
	models      map[string]map[string]ml.ModelVersion // model -> version -> body
	datastores  map[string]ml.DatastorePropertiesClassification
	jobs        map[string]*ml.CommandJob
	computes    map[string]ml.ComputeClassification
	endpoints   map[string]ml.OnlineEndpoint
	deployments map[string]map[string]ml.OnlineDeployment // endpoint -> name -> body
	calls       []string
	failures    []failure
	failPoll    map[string]bool // deployment names
}

type failure struct {
	call   string
	status int
	before func()
}

// New returns an empty workspace with its two default datastores.
func New() *Workspace {
	key := &ml.AccountKeyDatastoreCredentials{CredentialsType: to.Ptr(ml.CredentialsTypeAccountKey)}
	return &Workspace{
		models: map[string]map[string]ml.ModelVersion{},
		datastores: map[string]ml.DatastorePropertiesClassification{
			BlobDatastore: &ml.AzureBlobDatastore{DatastoreType: to.Ptr(ml.DatastoreTypeAzureBlob),
				AccountName: to.Ptr(StorageAccount), ContainerName: to.Ptr(BlobContainer),
				Endpoint: to.Ptr("core.windows.net"), Protocol: to.Ptr("https"), Credentials: key},
			FileDatastore: &ml.AzureFileDatastore{DatastoreType: to.Ptr(ml.DatastoreTypeAzureFile),
				AccountName: to.Ptr(StorageAccount), FileShareName: to.Ptr(FileShare),
				Endpoint: to.Ptr("core.windows.net"), Protocol: to.Ptr("https"), Credentials: key},
		},
		jobs:        map[string]*ml.CommandJob{},
		computes:    map[string]ml.ComputeClassification{},
		endpoints:   map[string]ml.OnlineEndpoint{},
		deployments: map[string]map[string]ml.OnlineDeployment{},
		failPoll:    map[string]bool{},
	}
}

// Server returns the SDK's fake servers, backed by the workspace.
func (w *Workspace) Server() *fake.ServerFactory {
	return &fake.ServerFactory{
		ModelContainersServer:   w.modelContainersServer(),
		ModelVersionsServer:     w.modelVersionsServer(),
		DatastoresServer:        w.datastoresServer(),
		JobsServer:              w.jobsServer(),
		ComputeServer:           w.computeServer(),
		OnlineEndpointsServer:   w.endpointsServer(),
		OnlineDeploymentsServer: w.deploymentsServer(),
	}
}

// Transport is a transport for the SDK's clients that serves every
// armmachinelearning client from the workspace.
func (w *Workspace) Transport() policy.Transporter {
	return fake.NewServerFactoryTransport(w.Server())
}

// ClientOptions are ARM client options whose transport is the workspace's;
// wrap, if not nil, is put between the clients' pipeline and the workspace
// (to throttle, or to answer some requests itself).
func (w *Workspace) ClientOptions(wrap func(policy.Transporter) policy.Transporter) *arm.ClientOptions {
	tr := w.Transport()
	if wrap != nil {
		tr = wrap(tr)
	}
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: tr}}
}

// Calls returns the calls served so far, oldest first, named
//
//	LIST models, LIST versions <model>, GET|PUT model <model>/<version>
//	GET datastore <name>
//	GET|PUT|CANCEL job <id>
//	GET compute <name>
//	LIST endpoints, GET|PUT|DELETE endpoint <endpoint>
//	LIST deployments <endpoint>, GET|PUT|DELETE deployment <endpoint>/<name>
//
// A call is recorded even when it fails.
func (w *Workspace) Calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// Count returns how many calls match call: calls named call, or starting
// with it and then a space or a slash. "PUT" counts every PUT, "PUT model m"
// every PUT of a version of m, "PUT model m/1" those of m/1 but not m/10.
func (w *Workspace) Count(call string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.calls {
		if matches(c, call) {
			n++
		}
	}
	return n
}

// FailNext makes the next call that matches call (as in Count) fail with
// that HTTP status, its text as the error code, without the workspace
// changing. Failures set for the same call are met in the order set.
func (w *Workspace) FailNext(call string, status int) {
	w.FailNextAfter(call, status, nil)
}

// FailNextAfter is FailNext that first runs before, with the workspace
// unlocked, so that it may change the workspace: a concurrent writer that
// won a race, say, before the call fails with 409.
func (w *Workspace) FailNextAfter(call string, status int, before func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, failure{call: call, status: status, before: before})
}

func matches(call, pattern string) bool {
	rest, ok := strings.CutPrefix(call, pattern)
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == '/')
}

// call records a call to the workspace in resource group rg named ws and
// returns the HTTP status and error code it is to fail with, if any: 404
// for another workspace, or the failure set for it, whose before hook has
// then run. The handlers lock the workspace after.
func (w *Workspace) call(rg, ws, name string) (status int, code string) {
	w.mu.Lock()
	w.calls = append(w.calls, name)
	if !strings.EqualFold(rg, ResourceGroup) || !strings.EqualFold(ws, Name) {
		w.mu.Unlock()
		return http.StatusNotFound, errNotFound
	}
	i := slices.IndexFunc(w.failures, func(f failure) bool { return matches(name, f.call) })
	if i < 0 {
		w.mu.Unlock()
		return 0, ""
	}
	f := w.failures[i]
	w.failures = slices.Delete(w.failures, i, i+1)
	w.mu.Unlock()
	if f.before != nil {
		f.before()
	}
	return f.status, http.StatusText(f.status)
}
