package spec

import (
	"fmt"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// IncompatibleError says why a workload version and a model cannot be paired.
// It unwraps to a modelfleet.EINVALID error, so transports answer 400/422.
type IncompatibleError struct {
	Workload string // "name:version"
	Model    string // "name" or "name:version"
	Reasons  []string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("workload %q is incompatible with model %q: %s", e.Workload, e.Model, strings.Join(e.Reasons, "; "))
}

// Unwrap gives the domain error code.
func (e *IncompatibleError) Unwrap() error {
	return modelfleet.Errorf(modelfleet.EINVALID, "%s", e.Error())
}

// Compatible reports whether workload w produces exactly the features
// modelFeatures (a model's declared schema, e.g. modelfleet.Model.Features).
// Names must match as sets: the router rejects an unknown feature and a
// missing one, so both directions are errors. Order may differ, because the
// runtime always sends features by name. The error names both sides.
func Compatible(w Manifest, modelFeatures []string) error {
	return compatible(w, w.Model, modelFeatures)
}

// CheckRelease is Compatible for a concrete model version: it also checks
// that the workload calls that model, and names the version in the error.
// Release planning calls it for every (workload, model) pair a release would
// leave at a site, before the release starts.
func CheckRelease(w Manifest, model modelfleet.ModelRef, modelFeatures []string) error {
	if w.Model != model.Name {
		return &IncompatibleError{Workload: w.Ref(), Model: model.String(),
			Reasons: []string{fmt.Sprintf("the workload calls model %q", w.Model)}}
	}
	return compatible(w, model.String(), modelFeatures)
}

func compatible(w Manifest, model string, modelFeatures []string) error {
	var reasons []string
	if len(modelFeatures) == 0 {
		reasons = append(reasons, "the model declares no feature names, so nothing can be checked or sent by name")
	}
	produced := make(map[string]bool, len(w.Features))
	for _, f := range w.Features {
		produced[f.Name] = true
	}
	wanted := make(map[string]bool, len(modelFeatures))
	var missing, extra []string
	for _, f := range modelFeatures {
		wanted[f] = true
		if !produced[f] {
			missing = append(missing, f)
		}
	}
	for _, f := range w.Features {
		if !wanted[f.Name] {
			extra = append(extra, f.Name)
		}
	}
	if len(missing) > 0 {
		reasons = append(reasons, "the model needs "+quoted(missing)+" that the workload does not produce")
	}
	if len(extra) > 0 {
		reasons = append(reasons, "the workload produces "+quoted(extra)+" that the model does not take")
	}
	if len(reasons) == 0 {
		return nil
	}
	return &IncompatibleError{Workload: w.Ref(), Model: model, Reasons: reasons}
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
