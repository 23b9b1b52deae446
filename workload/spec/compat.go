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

// Column is one feature of a model artifact's own schema (an MLflow
// signature, the feature names in an XGBoost, LightGBM or ONNX file): its
// name and, where the artifact says, its type (one of
// modelfleet.FeatureTypes).
type Column struct {
	Name string
	Type string
}

// CheckSchema checks the workload's features against the schema of the
// model version's artifact, as validation reads it before any site is
// touched. named is false when the artifact does not name its features
// (f0, f1, …: trained on bare arrays): then only their number is checked,
// and the error says so. Otherwise it names the first mismatch: a feature
// the model takes that the workload does not produce, one it produces that
// the model does not take, or a type the model's feature does not take
// (modelfleet.FeatureTypeTakes). Order is not compared: the workload sends
// features by name.
func CheckSchema(w Manifest, model modelfleet.ModelRef, cols []Column, named bool) error {
	fail := func(format string, args ...any) error {
		return &IncompatibleError{Workload: w.Ref(), Model: model.String(), Reasons: []string{fmt.Sprintf(format, args...)}}
	}
	if !named {
		if len(cols) != len(w.Features) {
			return fail("the model's file takes %d features and the workload produces %d (the file does not name its features, f0, f1, …, so only their number is checked)", len(cols), len(w.Features))
		}
		return nil
	}
	produced := make(map[string]Feature, len(w.Features))
	for _, f := range w.Features {
		produced[f.Name] = f
	}
	taken := make(map[string]bool, len(cols))
	for _, c := range cols {
		taken[c.Name] = true
		f, ok := produced[c.Name]
		if !ok {
			return fail("the model needs %q that the workload does not produce", c.Name)
		}
		if !modelfleet.FeatureTypeTakes(c.Type, f.Type) {
			return fail("feature %q: the model takes %s but the workload produces %s", c.Name, c.Type, f.Type)
		}
	}
	for _, f := range w.Features {
		if !taken[f.Name] {
			return fail("the workload produces %q that the model does not take", f.Name)
		}
	}
	return nil
}

// CheckUnits refuses a workload that declares a unit for a feature other
// than the unit the model version was trained on (units: the model's,
// modelfleet.FeatureUnits). Units are compared as written, so write them
// the same way on both sides (UCUM codes, e.g. "mm/s", "Cel", "g"); a
// feature without a unit on either side is not compared. The error names
// every mismatch.
func CheckUnits(w Manifest, model modelfleet.ModelRef, units map[string]string) error {
	var reasons []string
	for _, f := range w.Features {
		if want, ok := units[f.Name]; ok && f.Unit != "" && f.Unit != want {
			reasons = append(reasons, fmt.Sprintf("feature %q: the workload produces %s, the model was trained on %s", f.Name, f.Unit, want))
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return &IncompatibleError{Workload: w.Ref(), Model: model.String(), Reasons: reasons}
}
