package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/drivers/amlarc"
)

// amlarcFlags configure the amlarc driver in the worker. The driver is on
// when a workspace is named.
type amlarcFlags struct {
	cfg amlarc.Config
	// credOptions are DefaultAzureCredential's options: nil in production;
	// tests point its transport at a local Entra ID.
	credOptions *azidentity.DefaultAzureCredentialOptions
}

func (a *amlarcFlags) add(f *pflag.FlagSet) {
	c := &a.cfg
	f.StringVar(&c.Workspace, "amlarc-workspace", os.Getenv("MODELFLEET_AMLARC_WORKSPACE"), "Azure ML workspace whose Kubernetes computes serve sites with driver amlarc; turns the driver on ($MODELFLEET_AMLARC_WORKSPACE)")
	f.StringVar(&c.SubscriptionID, "amlarc-subscription", envOr("MODELFLEET_AMLARC_SUBSCRIPTION", os.Getenv("AZURE_SUBSCRIPTION_ID")), "the workspace's subscription ID ($MODELFLEET_AMLARC_SUBSCRIPTION, else $AZURE_SUBSCRIPTION_ID)")
	f.StringVar(&c.ResourceGroup, "amlarc-resource-group", os.Getenv("MODELFLEET_AMLARC_RESOURCE_GROUP"), "the workspace's resource group ($MODELFLEET_AMLARC_RESOURCE_GROUP)")
	f.StringVar(&c.Location, "amlarc-location", os.Getenv("MODELFLEET_AMLARC_LOCATION"), "the workspace's region, e.g. westeurope: its endpoint quotas are per region ($MODELFLEET_AMLARC_LOCATION)")
	f.StringVar(&c.EnvironmentID, "amlarc-environment", os.Getenv("MODELFLEET_AMLARC_ENVIRONMENT"), "scoring environment, an ARM ID or azureml:<name>:<version> ($MODELFLEET_AMLARC_ENVIRONMENT)")
	f.StringVar(&c.CodeID, "amlarc-code", os.Getenv("MODELFLEET_AMLARC_CODE"), "scoring code asset ARM ID, if the environment needs one ($MODELFLEET_AMLARC_CODE)")
	f.StringVar(&c.ScoringScript, "amlarc-scoring-script", os.Getenv("MODELFLEET_AMLARC_SCORING_SCRIPT"), "scoring script within the code asset ($MODELFLEET_AMLARC_SCORING_SCRIPT)")
	f.StringVar(&c.InstanceType, "amlarc-instance-type", envOr("MODELFLEET_AMLARC_INSTANCE_TYPE", "defaultinstancetype"), "the cluster's instance type for deployments ($MODELFLEET_AMLARC_INSTANCE_TYPE)")
}

// config is the driver's configuration, or nil when no workspace is named.
// The credential is azidentity's DefaultAzureCredential: workload identity
// in AKS or an Arc cluster (AZURE_CLIENT_ID, AZURE_TENANT_ID and
// AZURE_FEDERATED_TOKEN_FILE, set by the webhook), else a managed identity
// (AZURE_CLIENT_ID picks a user-assigned one), else the Azure CLI's login.
func (a *amlarcFlags) config() (*amlarc.Config, error) {
	c := a.cfg
	if c.Workspace == "" {
		return nil, nil
	}
	if c.SubscriptionID == "" || c.ResourceGroup == "" || c.Location == "" || c.EnvironmentID == "" {
		return nil, errors.New("--amlarc-workspace needs --amlarc-subscription, --amlarc-resource-group, --amlarc-location and --amlarc-environment")
	}
	cred, err := azidentity.NewDefaultAzureCredential(a.credOptions)
	if err != nil {
		return nil, fmt.Errorf("amlarc: azure credential: %w", err)
	}
	c.Credential = cred
	return &c, nil
}

// probeCredential asks for an ARM token once at start, so a missing
// identity shows in the worker's first log lines rather than at the first
// amlarc release. It only warns: a pod's federated token file or IMDS can
// lag the container's start, and the driver retries anyway.
func probeCredential(ctx context.Context, cred azcore.TokenCredential, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		log.Warn("amlarc: no Azure credential works yet; releases to amlarc sites will fail until one does", "error", err)
		return
	}
	log.Info("amlarc: Azure credential ready", "expires", tok.ExpiresOn.UTC().Format(time.RFC3339))
}
