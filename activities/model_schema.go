package activities

import (
	"context"
	"fmt"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// schemaNote checks a loaded artifact's own feature schema (an MLflow
// signature's names, order and types, or the names an XGBoost, LightGBM or
// ONNX file stores) against the model card's features, and then against
// the features of the workload version the model is released with (names,
// types, and the units both declare), and
// scores the artifact's input example. It returns why the version fails
// validation ("" if it passes); an error only when the workload could not
// be read (retried). It runs in ValidateModel, before any site is touched.
func (a *Cloud) schemaNote(ctx context.Context, m modelfleet.Model, model *inference.Model) (string, error) {
	names, types := model.FeatureNames(), model.FeatureTypes()
	named := !inference.Unnamed(names)
	if len(m.Features) > 0 {
		switch {
		case !named && len(m.Features) != len(names):
			return fmt.Sprintf("model declares %d features but the artifact takes %d (the artifact does not name its features, f0, f1, …, so only their number is checked)", len(m.Features), len(names)), nil
		case named:
			if d := inference.FirstDifference(m.Features, names); d != "" {
				return fmt.Sprintf("the model card's features disagree with the artifact's own, %q: %s", names, d), nil
			}
		}
	}
	if err := model.SmokeTest(); err != nil {
		return "the artifact's input example does not score: " + modelfleet.ErrorMessage(err), nil
	}
	if m.Properties[modelfleet.PropWorkload] == "" || a.Fleet == nil {
		return "", nil
	}
	rec, err := a.releaseWorkload(ctx, m)
	if modelfleet.ErrorCode(err) == modelfleet.EINVALID {
		return modelfleet.ErrorMessage(err), nil
	}
	if err != nil {
		return "", fmt.Errorf("validate %s: %w", m.ModelRef, err)
	}
	if rec == nil {
		return "", nil
	}
	w, err := spec.ParseManifest([]byte(rec.Manifest))
	if err != nil {
		w = manifestOf(rec.Name, rec.Version, rec.Model, rec.Features)
	}
	// The artifact's names when it has them; else the card's, which the
	// router sends by, with the artifact's types where it declares them.
	cols := make([]spec.Column, len(names))
	for i := range cols {
		cols[i].Name = names[i]
		if i < len(types) {
			cols[i].Type = types[i]
		}
		if !named && len(m.Features) == len(names) {
			cols[i].Name = m.Features[i]
		}
	}
	if err := spec.CheckSchema(w, m.ModelRef, cols, named || len(m.Features) == len(names)); err != nil {
		return err.Error(), nil
	}
	if err := spec.CheckUnits(w, m.ModelRef, modelfleet.FeatureUnits(m.Properties)); err != nil {
		return err.Error(), nil
	}
	return "", nil
}
