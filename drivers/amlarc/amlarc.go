// Package amlarc is the "amlarc" driver: a site is an Arc-connected
// Kubernetes cluster attached to an Azure ML workspace as a compute target,
// each model it serves is a Kubernetes online endpoint there, each version a
// KubernetesOnlineDeployment, and the A/B split the endpoint's traffic map.
// Everything goes through armmachinelearning's clients and long-running
// operation pollers; Azure's endpoint limits are checked before a release
// starts (see Plan), because they are hard and a half-done rollout is worse
// than one refused.
package amlarc

import (
	"errors"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	ml "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/machinelearning/armmachinelearning/v4"

	"github.com/modelfleet/modelfleet"
)

// Name is the driver's name in a site's registration.
const Name = "amlarc"

// ComputeLabel is the site label naming the workspace's Kubernetes compute
// target (the attached Arc cluster); without it the site's ID is used.
const ComputeLabel = "amlarc.compute"

// Config says which workspace to drive and how deployments are shaped.
type Config struct {
	SubscriptionID, ResourceGroup, Workspace string
	Location                                 string // the workspace's region, e.g. "westeurope"
	Credential                               azcore.TokenCredential
	ClientOptions                            *arm.ClientOptions // nil in production; tests set a fake Transport

	// EnvironmentID is the scoring environment (an ARM ID or "azureml:name:version").
	EnvironmentID string
	// CodeID and ScoringScript are the scoring code, when the environment needs it.
	CodeID, ScoringScript string
	// InstanceType is the cluster's instance type (default "defaultinstancetype").
	InstanceType string
	// MinInstances and MaxInstances bound the autoscaler (default 1 and 1).
	MinInstances, MaxInstances int32
	// RequestTimeout is the scoring timeout (default 5s; Kubernetes endpoints allow 300s).
	RequestTimeout time.Duration
	// MaxConcurrentRequests per instance (default 4).
	MaxConcurrentRequests int32
	// ModelID is the Azure ML model asset a version deploys (default: the
	// workspace's models/<name>/versions/<version>, which is where Azure
	// ML's ModelRegistered events come from).
	ModelID func(model string, v modelfleet.DesiredVersion) string
	// Limits are Azure's; zero fields take the documented defaults. Lower
	// them when other workspaces share the subscription and region.
	Limits Limits
	// Trust, if set, are the release keys: a version deploys only with a
	// release statement they verify (as an agent site loads it), and the
	// statement travels to the deployment (MODELFLEET_STATEMENT).
	Trust *modelfleet.Trust
	// PollFrequency is how often a long-running operation is polled (default 10s).
	PollFrequency time.Duration
	// Progress, if set, hears every poll of every long-running operation:
	// wire it to activity.RecordHeartbeat inside a Temporal activity, or to a
	// log line in the reconciler.
	Progress func(Event)
}

// Event is one step of a long-running ARM operation.
type Event struct {
	Site, Model, Op, Resource string
	Status                    string // "started", "polling", "succeeded", "failed"
}

// Driver drives one Azure ML workspace.
type Driver struct {
	cfg         Config
	endpoints   *ml.OnlineEndpointsClient
	deployments *ml.OnlineDeploymentsClient
}

// New checks cfg and builds the ARM clients.
func New(cfg Config) (*Driver, error) {
	switch {
	case cfg.SubscriptionID == "" || cfg.ResourceGroup == "" || cfg.Workspace == "" || cfg.Location == "":
		return nil, errors.New("amlarc: subscription, resource group, workspace and location are required")
	case cfg.Credential == nil:
		return nil, errors.New("amlarc: a credential is required")
	case cfg.EnvironmentID == "":
		return nil, errors.New("amlarc: an environment id is required")
	}
	if cfg.InstanceType == "" {
		cfg.InstanceType = "defaultinstancetype"
	}
	if cfg.MinInstances <= 0 {
		cfg.MinInstances = 1
	}
	cfg.MaxInstances = max(cfg.MaxInstances, cfg.MinInstances)
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.MaxConcurrentRequests <= 0 {
		cfg.MaxConcurrentRequests = 4
	}
	if cfg.PollFrequency <= 0 {
		cfg.PollFrequency = 10 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	f, err := ml.NewClientFactory(cfg.SubscriptionID, cfg.Credential, cfg.ClientOptions)
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, endpoints: f.NewOnlineEndpointsClient(), deployments: f.NewOnlineDeploymentsClient()}, nil
}

// Name returns "amlarc".
func (d *Driver) Name() string { return Name }

// computeOf is the compute target a site's endpoints run on.
func computeOf(s modelfleet.Site) string {
	if c := s.Labels[ComputeLabel]; c != "" {
		return c
	}
	return s.ID
}

func (d *Driver) workspaceID() string {
	return "/subscriptions/" + d.cfg.SubscriptionID + "/resourceGroups/" + d.cfg.ResourceGroup +
		"/providers/Microsoft.MachineLearningServices/workspaces/" + d.cfg.Workspace
}

func (d *Driver) computeID(compute string) string { return d.workspaceID() + "/computes/" + compute }

func (d *Driver) modelID(model string, v modelfleet.DesiredVersion) string {
	if d.cfg.ModelID != nil {
		return d.cfg.ModelID(model, v)
	}
	return d.workspaceID() + "/models/" + model + "/versions/" + v.Version
}

// SetTrust sets the release keys versions are verified with (Config.Trust);
// call it before the driver is used.
func (d *Driver) SetTrust(t *modelfleet.Trust) { d.cfg.Trust = t }
