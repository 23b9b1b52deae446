package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/training"
)

// trainingFlags give the cloud worker its retraining compute: the policies
// (which model retrains where, with what command and data) and the runners
// they name — a local subprocess runner, and Azure ML command jobs on a
// cloud compute cluster or an Arc-connected edge compute of the workspace.
type trainingFlags struct {
	policies, dir string
	// credOptions are DefaultAzureCredential's options: nil in production.
	credOptions *azidentity.DefaultAzureCredentialOptions
}

func (t *trainingFlags) add(f *pflag.FlagSet) {
	f.StringVar(&t.policies, "training-policies", os.Getenv("MODELFLEET_TRAINING_POLICIES"), "retraining policies (YAML, docs/retraining.md): the compute, command and data of each model; none: retraining waits for jobs others submit ($MODELFLEET_TRAINING_POLICIES)")
	f.StringVar(&t.dir, "training-dir", envOr("MODELFLEET_TRAINING_DIR", filepath.Join(os.TempDir(), "modelfleet-training")), "the local runner's folder (runs/), local training data (data/<model>/) and downloaded Azure ML job outputs (outputs/) ($MODELFLEET_TRAINING_DIR)")
}

// retraining builds the worker's retraining activities, or nil without
// policies. An Azure ML runner is made only if a policy names an azureml
// compute; its workspace comes from the Azure ML registry's or the amlarc
// driver's flags.
func (t *trainingFlags) retraining(aml *amlarcFlags, reg *azuremlRegistryFlags, log *slog.Logger) (*activities.Retraining, error) {
	if t.policies == "" {
		return nil, nil
	}
	doc, err := os.ReadFile(t.policies)
	if err != nil {
		return nil, fmt.Errorf("--training-policies: %w", err)
	}
	ps, err := training.ParsePolicies(doc)
	if err != nil {
		return nil, fmt.Errorf("--training-policies %s: %w", t.policies, err)
	}
	rt := &activities.Retraining{
		Policies: ps,
		Runners: map[string]modelfleet.Trainer{
			modelfleet.ComputeLocal: &training.Local{Root: filepath.Join(t.dir, "runs"), Logger: log.With("component", "training")},
		},
		DataDir: filepath.Join(t.dir, "data"),
	}
	var kinds []string
	for _, p := range ps.Models {
		kinds = append(kinds, p.Compute.Kind)
	}
	if !slices.Contains(kinds, modelfleet.ComputeAzureMLCloud) && !slices.Contains(kinds, modelfleet.ComputeAzureMLEdge) {
		return rt, nil
	}
	c := training.AzureMLConfig{OutputDir: filepath.Join(t.dir, "outputs")}
	if reg != nil {
		c.SubscriptionID, c.ResourceGroup, c.Workspace = reg.cfg.SubscriptionID, reg.cfg.ResourceGroup, reg.cfg.Workspace
	}
	if aml != nil {
		c.SubscriptionID = firstNonEmpty(c.SubscriptionID, aml.cfg.SubscriptionID)
		c.ResourceGroup = firstNonEmpty(c.ResourceGroup, aml.cfg.ResourceGroup)
		c.Workspace = firstNonEmpty(c.Workspace, aml.cfg.Workspace)
	}
	c.SubscriptionID = firstNonEmpty(c.SubscriptionID, os.Getenv("AZURE_SUBSCRIPTION_ID"))
	if c.SubscriptionID == "" || c.ResourceGroup == "" || c.Workspace == "" {
		return nil, errors.New("--training-policies names Azure ML compute: give the workspace with the --azureml-registry-* or --amlarc-* flags")
	}
	if c.Credential, err = azidentity.NewDefaultAzureCredential(t.credOptions); err != nil {
		return nil, fmt.Errorf("azure ml training: azure credential: %w", err)
	}
	cloud, err := training.NewAzureML(c)
	if err != nil {
		return nil, err
	}
	// Edge jobs are checked to go to an Arc-connected compute: data that
	// must stay in the plant never lands on a cloud cluster by a slip.
	c.VerifyCompute = true
	edge, err := training.NewAzureML(c)
	if err != nil {
		return nil, err
	}
	rt.Runners[modelfleet.ComputeAzureMLCloud], rt.Runners[modelfleet.ComputeAzureMLEdge] = cloud, edge
	log.Info("azure ml training on", "subscription", c.SubscriptionID, "resource_group", c.ResourceGroup, "workspace", c.Workspace)
	return rt, nil
}
