package training

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// Compute kinds.
const (
	// KindLocal runs the command as a subprocess of the worker (the
	// embedded stack).
	KindLocal = "local"
	// KindAzureMLCloud submits an Azure ML command job to a compute
	// cluster in the cloud.
	KindAzureMLCloud = "azureml-cloud"
	// KindAzureMLEdge submits it to an Arc-connected Kubernetes compute
	// attached to the workspace: the data stays in the plant.
	KindAzureMLEdge = "azureml-edge"
	// KindExternal is not a policy anyone writes: it is what a model
	// without a policy gets. modelfleet submits nothing and waits for the
	// run status of a job someone else submitted (tagged RetrainTag).
	KindExternal = "external"
)

// Kinds lists the kinds a policy may name.
var Kinds = []string{KindLocal, KindAzureMLCloud, KindAzureMLEdge}

// computeIDRE is the ARM ID of an Azure ML workspace compute.
var computeIDRE = regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+/computes/[A-Za-z0-9][A-Za-z0-9-]{1,31}$`)

// ComputePolicy says where a model retrains.
type ComputePolicy struct {
	Kind string `json:"kind" yaml:"kind"`
	// ComputeID is the ARM ID of the Azure ML compute
	// (/subscriptions/<sub>/resourceGroups/<rg>/providers/
	// Microsoft.MachineLearningServices/workspaces/<ws>/computes/<name>):
	// a compute cluster for azureml-cloud, the attached Arc Kubernetes
	// compute for azureml-edge. Not used by local.
	ComputeID string `json:"computeId,omitempty" yaml:"computeId,omitempty"`
}

// Validate checks the policy.
func (p ComputePolicy) Validate() error {
	switch p.Kind {
	case KindLocal:
		if p.ComputeID != "" {
			return modelfleet.Errorf(modelfleet.EINVALID, "compute %q takes no computeId (got %q)", p.Kind, p.ComputeID)
		}
	case KindAzureMLCloud, KindAzureMLEdge:
		if !computeIDRE.MatchString(p.ComputeID) {
			return modelfleet.Errorf(modelfleet.EINVALID,
				"compute %q: computeId %q is not an Azure ML compute ARM ID (/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<ws>/computes/<name>)",
				p.Kind, p.ComputeID)
		}
	case "":
		return modelfleet.Errorf(modelfleet.EINVALID, "compute kind is required: one of %s", strings.Join(Kinds, ", "))
	default:
		return modelfleet.Errorf(modelfleet.EINVALID, "compute kind %q is not one of %s", p.Kind, strings.Join(Kinds, ", "))
	}
	return nil
}

// ComputeName is the compute's name: the last segment of its ARM ID.
func (p ComputePolicy) ComputeName() string {
	return p.ComputeID[strings.LastIndex(p.ComputeID, "/")+1:]
}

// Policy is how one model retrains: where, with what command, on which data.
type Policy struct {
	Compute ComputePolicy `json:"compute" yaml:"compute"`
	// Command is the training command line (see the package doc).
	Command string `json:"command" yaml:"command"`
	// Data is the training data folder. Local: a path; empty means
	// <data dir>/<model>/train. Azure ML: an input URI, required.
	Data string `json:"data,omitempty" yaml:"data,omitempty"`
	// Holdout is a labelled CSV the worker reads to compare the challenger
	// with the champion; it must not be part of Data. Empty means
	// <data dir>/<model>/holdout.csv if it exists, else the champion's
	// declared validation set.
	Holdout string `json:"holdout,omitempty" yaml:"holdout,omitempty"`
	// Output, Environment and Code: Azure ML only (see Job).
	Output      string            `json:"output,omitempty" yaml:"output,omitempty"`
	Environment string            `json:"environment,omitempty" yaml:"environment,omitempty"`
	Code        string            `json:"code,omitempty" yaml:"code,omitempty"`
	Env         map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	// Timeout bounds one run where the backend enforces it (Azure ML's
	// job limit); the workflow's JobTimeout bounds it everywhere.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// Validate checks the policy.
func (p *Policy) Validate() error {
	if err := p.Compute.Validate(); err != nil {
		return err
	}
	if strings.TrimSpace(p.Command) == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "command is required")
	}
	if p.Compute.Kind == KindLocal {
		return nil
	}
	if p.Environment == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "compute %q: environment is required (an Azure ML environment ID)", p.Compute.Kind)
	}
	for _, u := range []struct{ what, v string }{{"data", p.Data}, {"output", p.Output}} {
		if u.v == "" && u.what == "output" {
			continue
		}
		if !strings.HasPrefix(u.v, "azureml://") && !strings.HasPrefix(u.v, "https://") {
			return modelfleet.Errorf(modelfleet.EINVALID, "compute %q: %s %q must be an azureml:// or https:// URI", p.Compute.Kind, u.what, u.v)
		}
	}
	if p.Timeout < 0 {
		return modelfleet.Errorf(modelfleet.EINVALID, "timeout %s is negative", p.Timeout)
	}
	return nil
}

// Policies holds every model's policy; Default, if set, applies to models
// without one of their own.
type Policies struct {
	Default *Policy           `json:"default,omitempty" yaml:"default,omitempty"`
	Models  map[string]Policy `json:"models,omitempty" yaml:"models,omitempty"`
}

// For returns the model's policy; false if it has none (KindExternal).
func (ps Policies) For(model string) (Policy, bool) {
	if p, ok := ps.Models[model]; ok {
		return p, true
	}
	if ps.Default != nil {
		return *ps.Default, true
	}
	return Policy{}, false
}

// Validate checks every policy; the error names the model.
func (ps Policies) Validate() error {
	if ps.Default != nil {
		if err := ps.Default.Validate(); err != nil {
			return modelfleet.Errorf(modelfleet.EINVALID, "default retraining policy: %s", modelfleet.ErrorMessage(err))
		}
	}
	names := make([]string, 0, len(ps.Models))
	for m := range ps.Models {
		names = append(names, m)
	}
	slices.Sort(names)
	for _, m := range names {
		if err := modelfleet.ValidateName("model name", m); err != nil {
			return err
		}
		p := ps.Models[m]
		if err := p.Validate(); err != nil {
			return modelfleet.Errorf(modelfleet.EINVALID, "retraining policy of %s: %s", m, modelfleet.ErrorMessage(err))
		}
	}
	return nil
}

// ParsePolicies reads policies from YAML (or JSON) and validates them.
//
//	models:
//	  bearing-failure:
//	    compute: {kind: local}
//	    command: go run ./examples/bearing-failure/train -data ${{inputs.data}} -out ${{outputs.model}}
//	  press-anomaly:
//	    compute:
//	      kind: azureml-edge
//	      computeId: /subscriptions/.../workspaces/ws/computes/arc-plant-a
//	    command: python train.py --data ${{inputs.data}} --out ${{outputs.model}}
//	    environment: azureml:lightgbm-train:3
//	    data: azureml://datastores/plant_a/paths/press/labelled/
func ParsePolicies(data []byte) (Policies, error) {
	var ps Policies
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&ps); err != nil && !errors.Is(err, io.EOF) {
		return Policies{}, modelfleet.Errorf(modelfleet.EINVALID, "retraining policies: %v", err)
	}
	return ps, ps.Validate()
}

// Duration is a time.Duration written as a Go duration string ("6h").
type Duration time.Duration

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "6h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}
