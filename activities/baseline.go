package activities

import (
	"context"
	"fmt"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

// BaselineBins is how many bins each numerical feature, and the
// predictions, of a baseline get: Azure ML model monitoring's default
// histogram resolution is of this order, and 20 keeps a signal message of
// 50 features well under a queue message's size.
const BaselineBins = 20

// BaselineStore keeps each model version's baseline where the sites and the
// drift monitor read it (fleet.Client).
type BaselineStore interface {
	PutBaseline(ctx context.Context, model, version string, b *signals.Baseline) (string, error)
}

// storeBaseline bins the validation data and the model's predictions on it
// into the version's baseline and stores it: what the site agents count
// their traffic into and the monitor measures drift against. It returns
// the baseline's digest, which the release puts in each site's desired
// state.
func (a *Cloud) storeBaseline(ctx context.Context, ref modelfleet.ModelRef, m *inference.Model, ds *inference.Dataset) (string, error) {
	if a.Baselines == nil {
		return "", nil
	}
	preds := make([]float64, len(ds.X))
	for i, x := range ds.X {
		p, err := m.Predict(x)
		if err != nil {
			return "", fmt.Errorf("baseline %s: row %d: %w", ref, i+1, err)
		}
		preds[i] = p
	}
	b, err := signals.BuildBaseline(ds, BaselineBins, signals.WithPredictions(preds))
	if err != nil {
		return "", fmt.Errorf("baseline %s: %w", ref, err)
	}
	digest, err := a.Baselines.PutBaseline(ctx, ref.Name, ref.Version, b)
	if err != nil {
		return "", fmt.Errorf("baseline %s: store: %w", ref, err)
	}
	return digest, nil
}
