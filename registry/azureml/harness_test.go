package azureml_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/modelfleet/modelfleet/azureblob/blobtest"
	"github.com/modelfleet/modelfleet/internal/amlfake"
	"github.com/modelfleet/modelfleet/registry/azureml"
)

const (
	sub     = amlfake.SubscriptionID
	rg      = amlfake.ResourceGroup
	ws      = amlfake.Name
	account = amlfake.StorageAccount
	bucket  = amlfake.BlobContainer
	host    = amlfake.BlobHost
)

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
	ws    *amlfake.Workspace
	store *blobtest.Storage
	cred  *tokens
	reg   *azureml.Registry
}

// newHarness wires a Registry to a fake workspace and the local storage;
// wrap, if set, sits between the ARM pipeline and the fake (to inject raw
// responses).
func newHarness(t *testing.T, cfg azureml.Config, wrap func(policy.Transporter) policy.Transporter) *harness {
	t.Helper()
	h := &harness{ws: amlfake.New(), store: blobtest.Start(t), cred: &tokens{}}
	cfg.SubscriptionID, cfg.ResourceGroup, cfg.Workspace = sub, rg, ws
	cfg.Credential = h.cred
	cfg.ClientOptions = h.ws.ClientOptions(wrap)
	cfg.BlobOptions = h.store.Options()
	reg, err := azureml.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.reg = reg
	return h
}
