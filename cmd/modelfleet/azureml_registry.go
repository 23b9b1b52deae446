package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/registry/azureml"
)

// azuremlRegistryFlags make the worker use an Azure ML workspace's model
// registry (registry/azureml) for validation and retraining instead of the
// embedded registry at --registry.
type azuremlRegistryFlags struct {
	on  bool
	cfg azureml.Config
	// credOptions are DefaultAzureCredential's options: nil in production.
	credOptions *azidentity.DefaultAzureCredentialOptions
}

func (a *azuremlRegistryFlags) add(f *pflag.FlagSet) {
	on, _ := strconv.ParseBool(os.Getenv("MODELFLEET_AZUREML_REGISTRY"))
	f.BoolVar(&a.on, "azureml-registry", on, "read and register model versions in an Azure ML workspace instead of the embedded registry ($MODELFLEET_AZUREML_REGISTRY)")
	c := &a.cfg
	f.StringVar(&c.SubscriptionID, "azureml-registry-subscription", os.Getenv("MODELFLEET_AZUREML_REGISTRY_SUBSCRIPTION"), "the workspace's subscription ID (default --amlarc-subscription) ($MODELFLEET_AZUREML_REGISTRY_SUBSCRIPTION)")
	f.StringVar(&c.ResourceGroup, "azureml-registry-resource-group", os.Getenv("MODELFLEET_AZUREML_REGISTRY_RESOURCE_GROUP"), "the workspace's resource group (default --amlarc-resource-group) ($MODELFLEET_AZUREML_REGISTRY_RESOURCE_GROUP)")
	f.StringVar(&c.Workspace, "azureml-registry-workspace", os.Getenv("MODELFLEET_AZUREML_REGISTRY_WORKSPACE"), "the Azure ML workspace holding the models (default --amlarc-workspace) ($MODELFLEET_AZUREML_REGISTRY_WORKSPACE)")
	f.StringVar(&c.Datastore, "azureml-registry-datastore", envOr("MODELFLEET_AZUREML_REGISTRY_DATASTORE", azureml.DefaultDatastore), "blob datastore that registered artifacts are uploaded to ($MODELFLEET_AZUREML_REGISTRY_DATASTORE)")
	f.StringVar(&c.ContainerURL, "azureml-registry-container-url", os.Getenv("MODELFLEET_AZUREML_REGISTRY_CONTAINER_URL"), "the datastore's blob container, https://<account>.blob.core.windows.net/<container>; default: read from the datastore ($MODELFLEET_AZUREML_REGISTRY_CONTAINER_URL)")
	f.StringVar(&c.PathPrefix, "azureml-registry-path-prefix", envOr("MODELFLEET_AZUREML_REGISTRY_PATH_PREFIX", azureml.DefaultPathPrefix), "folder in the datastore for uploaded versions ($MODELFLEET_AZUREML_REGISTRY_PATH_PREFIX)")
}

// config is the registry's configuration, or nil when --azureml-registry is
// off. The workspace defaults to the amlarc driver's (usually the same
// one); the credential is azidentity's DefaultAzureCredential, as for
// amlarc (docs/azure.md).
func (a *azuremlRegistryFlags) config(aml *amlarcFlags) (*azureml.Config, error) {
	if !a.on {
		return nil, nil
	}
	c := a.cfg
	if aml != nil {
		c.SubscriptionID = firstNonEmpty(c.SubscriptionID, aml.cfg.SubscriptionID)
		c.ResourceGroup = firstNonEmpty(c.ResourceGroup, aml.cfg.ResourceGroup)
		c.Workspace = firstNonEmpty(c.Workspace, aml.cfg.Workspace)
	}
	c.SubscriptionID = firstNonEmpty(c.SubscriptionID, os.Getenv("AZURE_SUBSCRIPTION_ID"))
	if c.SubscriptionID == "" || c.ResourceGroup == "" || c.Workspace == "" {
		return nil, errors.New("--azureml-registry needs --azureml-registry-subscription, --azureml-registry-resource-group and --azureml-registry-workspace (or the --amlarc-* ones)")
	}
	cred, err := azidentity.NewDefaultAzureCredential(a.credOptions)
	if err != nil {
		return nil, fmt.Errorf("azure ml registry: azure credential: %w", err)
	}
	c.Credential = cred
	return &c, nil
}

// probeRegistryCredential asks once, at start, for the two tokens the
// registry uses, so a missing identity or role shows in the first log
// lines. It only warns (see probeCredential); tokens are never logged.
func probeRegistryCredential(ctx context.Context, cred azcore.TokenCredential, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, scope := range []string{"https://management.azure.com/.default", azureml.StorageScope} {
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}}); err != nil {
			log.Warn("azure ml registry: no Azure credential works yet; validation and retraining will fail until one does", "scope", scope, "error", err)
			return
		}
	}
	log.Info("azure ml registry: Azure credential ready")
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
