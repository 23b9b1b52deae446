package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/drivers/amlarc"
)

func amlarcFromArgs(t *testing.T, args ...string) (*amlarc.Config, error) {
	t.Helper()
	a := &amlarcFlags{}
	fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
	a.add(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return a.config()
}

func TestAMLArcConfig(t *testing.T) {
	for _, k := range []string{"MODELFLEET_AMLARC_WORKSPACE", "MODELFLEET_AMLARC_SUBSCRIPTION", "MODELFLEET_AMLARC_RESOURCE_GROUP", "MODELFLEET_AMLARC_LOCATION", "MODELFLEET_AMLARC_ENVIRONMENT"} {
		t.Setenv(k, "")
	}
	t.Setenv("AZURE_SUBSCRIPTION_ID", "11111111-1111-1111-1111-111111111111")

	if c, err := amlarcFromArgs(t); c != nil || err != nil {
		t.Errorf("no workspace: %+v, %v; want the driver off", c, err)
	}
	if _, err := amlarcFromArgs(t, "--amlarc-workspace=ws"); err == nil || !strings.Contains(err.Error(), "--amlarc-location") {
		t.Errorf("incomplete: %v, want an error naming the missing flags", err)
	}

	t.Setenv("MODELFLEET_AMLARC_RESOURCE_GROUP", "rg-factory")
	t.Setenv("MODELFLEET_AMLARC_LOCATION", "westeurope")
	t.Setenv("MODELFLEET_AMLARC_ENVIRONMENT", "azureml:modelfleet-lightgbm:1")
	c, err := amlarcFromArgs(t, "--amlarc-workspace=mlw-factory")
	if err != nil {
		t.Fatal(err)
	}
	if c.SubscriptionID != "11111111-1111-1111-1111-111111111111" || c.ResourceGroup != "rg-factory" || c.Workspace != "mlw-factory" || c.InstanceType != "defaultinstancetype" {
		t.Errorf("config %+v", c)
	}
	// DefaultAzureCredential: built without touching the network (it
	// reaches Entra ID or IMDS only when asked for a token).
	if _, ok := c.Credential.(*azidentity.DefaultAzureCredential); !ok {
		t.Errorf("credential %T, want DefaultAzureCredential", c.Credential)
	}
	// The driver accepts it.
	if _, err := amlarc.New(*c); err != nil {
		t.Errorf("amlarc.New: %v", err)
	}

}

// In a pod with Azure Workload Identity the webhook sets AZURE_CLIENT_ID,
// AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST; the
// worker's credential must exchange the projected service-account token
// for an ARM token at Entra ID. Here Entra ID is a local HTTPS server that
// speaks the OpenID discovery and client-assertion token protocol.
func TestAMLArcCredentialUsesWorkloadIdentity(t *testing.T) {
	var mu sync.Mutex
	var assertion, scope string
	entra := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/tenant-1"
		switch {
		case r.URL.Path == "/tenant-1/v2.0/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{
				"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize",
				"issuer": base + "/v2.0",
			})
		case r.URL.Path == "/tenant-1/oauth2/v2.0/token" && r.Method == http.MethodPost:
			_ = r.ParseForm()
			mu.Lock()
			assertion, scope = r.PostForm.Get("client_assertion"), r.PostForm.Get("scope")
			mu.Unlock()
			json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": "arm-token"})
		default:
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		}
	}))
	defer entra.Close()
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte("projected-sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AZURE_CLIENT_ID": "client-1", "AZURE_TENANT_ID": "tenant-1", "AZURE_FEDERATED_TOKEN_FILE": tokenFile,
		"AZURE_AUTHORITY_HOST": entra.URL + "/", "AZURE_CLIENT_SECRET": "", "AZURE_CLIENT_CERTIFICATE_PATH": "",
		"AZURE_USERNAME": "", "AZURE_TOKEN_CREDENTIALS": "",
	} {
		t.Setenv(k, v)
		if v == "" {
			os.Unsetenv(k) // t.Setenv restores it afterwards
		}
	}
	a := &amlarcFlags{
		cfg: amlarc.Config{Workspace: "ws", SubscriptionID: "s", ResourceGroup: "rg", Location: "westeurope", EnvironmentID: "azureml:env:1"},
		credOptions: &azidentity.DefaultAzureCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Transport: entra.Client()},
			DisableInstanceDiscovery: true, // a local authority is not in Entra's instance list
		},
	}
	c, err := a.config()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	probeCredential(context.Background(), c.Credential, slog.New(slog.NewTextHandler(&logs, nil)))
	mu.Lock()
	defer mu.Unlock()
	if assertion != "projected-sa-token" || !strings.Contains(scope, "https://management.azure.com/.default") {
		t.Errorf("token request: assertion %q scope %q", assertion, scope)
	}
	if !strings.Contains(logs.String(), "Azure credential ready") || strings.Contains(logs.String(), "arm-token") {
		t.Errorf("probe logged %q", logs.String())
	}
}
