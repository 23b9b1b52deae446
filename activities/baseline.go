package activities

import (
	"context"
	"fmt"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// Baselines builds a validated version's drift baseline from its validation
// data and the model's predictions on it, stores it where the sites and the
// drift monitor read it, and returns its digest (fleet.BaselineWriter).
type Baselines interface {
	// StoreBaseline: predictions are the model's on each row of ds, a
	// model of the task (modelfleet.TaskBinary, ...) with classes classes.
	StoreBaseline(ctx context.Context, ref modelfleet.ModelRef, ds *inference.Dataset, task string, classes int, predictions []float64) (digest string, err error)
}

// storeBaseline scores the validation data and stores the version's
// baseline: what the site agents count their traffic into and the monitor
// measures drift against. It returns the baseline's digest, which the
// release puts in each site's desired state.
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
	digest, err := a.Baselines.StoreBaseline(ctx, ref, ds, m.Task(), m.NumClasses(), preds)
	if err != nil {
		return "", fmt.Errorf("baseline %s: %w", ref, err)
	}
	return digest, nil
}
