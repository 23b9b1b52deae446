package main

import (
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/registry/azureml"
)

func TestAzureMLRegistryConfig(t *testing.T) {
	for _, k := range []string{"MODELFLEET_AZUREML_REGISTRY", "MODELFLEET_AZUREML_REGISTRY_SUBSCRIPTION", "MODELFLEET_AZUREML_REGISTRY_RESOURCE_GROUP",
		"MODELFLEET_AZUREML_REGISTRY_WORKSPACE", "MODELFLEET_AZUREML_REGISTRY_DATASTORE", "MODELFLEET_AZUREML_REGISTRY_CONTAINER_URL",
		"MODELFLEET_AZUREML_REGISTRY_PATH_PREFIX", "MODELFLEET_AMLARC_WORKSPACE", "MODELFLEET_AMLARC_SUBSCRIPTION", "MODELFLEET_AMLARC_RESOURCE_GROUP", "AZURE_SUBSCRIPTION_ID"} {
		t.Setenv(k, "")
	}
	parse := func(args ...string) (*azureml.Config, error) {
		t.Helper()
		var aml amlarcFlags
		var reg azuremlRegistryFlags
		fs := pflag.NewFlagSet("worker", pflag.ContinueOnError)
		aml.add(fs)
		reg.add(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return reg.config(&aml)
	}

	if c, err := parse("--amlarc-workspace=ws"); c != nil || err != nil {
		t.Errorf("off by default: %+v, %v", c, err)
	}
	if _, err := parse("--azureml-registry"); err == nil || !strings.Contains(err.Error(), "--azureml-registry-workspace") {
		t.Errorf("incomplete: %v, want the missing flags named", err)
	}

	// The amlarc driver's workspace is the default.
	t.Setenv("AZURE_SUBSCRIPTION_ID", "11111111-1111-1111-1111-111111111111")
	c, err := parse("--azureml-registry", "--amlarc-workspace=mlw-factory", "--amlarc-resource-group=rg-factory")
	if err != nil {
		t.Fatal(err)
	}
	if c.SubscriptionID != "11111111-1111-1111-1111-111111111111" || c.ResourceGroup != "rg-factory" || c.Workspace != "mlw-factory" ||
		c.Datastore != "workspaceblobstore" || c.PathPrefix != "modelfleet/models" || c.ContainerURL != "" {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.Credential.(*azidentity.DefaultAzureCredential); !ok {
		t.Errorf("credential %T, want DefaultAzureCredential", c.Credential)
	}
	if _, err := azureml.New(*c); err != nil {
		t.Errorf("azureml.New: %v", err)
	}

	// Its own flags and variables win.
	t.Setenv("MODELFLEET_AZUREML_REGISTRY", "true")
	t.Setenv("MODELFLEET_AZUREML_REGISTRY_WORKSPACE", "mlw-models")
	t.Setenv("MODELFLEET_AZUREML_REGISTRY_CONTAINER_URL", "https://acct.blob.core.windows.net/models")
	c, err = parse("--amlarc-workspace=mlw-factory", "--azureml-registry-resource-group=rg-models", "--azureml-registry-datastore=models")
	if err != nil {
		t.Fatal(err)
	}
	if c.Workspace != "mlw-models" || c.ResourceGroup != "rg-models" || c.Datastore != "models" || c.ContainerURL != "https://acct.blob.core.windows.net/models" {
		t.Errorf("config %+v", c)
	}
}
