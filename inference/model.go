// Package inference is the edge model runtime: it loads a model artifact,
// turns request bodies and CSV files into feature rows, scores them, and
// computes the validation metrics a release is gated on. It is pure Go (no
// cgo) so the edge agent stays a single static binary.
package inference

import (
	"bufio"
	"bytes"
	"fmt"
	"math"

	"github.com/dmitryikh/leaves"

	"github.com/modelfleet/modelfleet"
)

// Model is a loaded model, safe for concurrent use.
type Model struct {
	ens      *leaves.Ensemble
	features []string
}

// Load parses a model artifact of the given format. Only
// modelfleet.FormatLightGBM (a LightGBM text model file with a single output:
// binary or regression) is supported. Artifacts come from users, so the file
// is checked before leaves sees it and any panic inside leaves becomes an
// error.
func Load(format string, data []byte) (m *Model, err error) {
	if format != modelfleet.FormatLightGBM {
		return nil, invalid("model format %q is not supported: use %q", format, modelfleet.FormatLightGBM)
	}
	names, err := checkLightGBM(data)
	if err != nil {
		return nil, invalid("lightgbm model: %v", err)
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, invalid("lightgbm model: malformed file (%v)", r)
		}
	}()
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(data)), true)
	if err != nil {
		return nil, invalid("lightgbm model: %v", err)
	}
	if ens.NOutputGroups() != 1 {
		return nil, invalid("lightgbm model: %d outputs: only single-output models are supported", ens.NOutputGroups())
	}
	return &Model{ens: ens, features: names}, nil
}

// NumFeatures is the length of the row Predict expects. It comes from the
// file's feature_names, since leaves reports 0 for a one-feature model.
func (m *Model) NumFeatures() int { return len(m.features) }

// FeatureNames returns the feature names stored in the model file, in model
// order. Callers can compare them with the names a model card declares
// (files trained from bare arrays carry generic names like "Column_0").
func (m *Model) FeatureNames() []string { return append([]string(nil), m.features...) }

// Predict returns the model's output for one row: for a binary objective the
// probability of the positive class, for regression the raw value.
func (m *Model) Predict(x []float64) (p float64, err error) {
	if len(x) != len(m.features) {
		return 0, invalid("got %d features, want %d", len(x), len(m.features))
	}
	// Load checked the trees, so this is only a last line of defence: a bug
	// in one model must not take the edge agent down.
	defer func() {
		if r := recover(); r != nil {
			p, err = 0, fmt.Errorf("predict: %v", r)
		}
	}()
	p = m.ens.PredictSingle(x, 0)
	if math.IsNaN(p) {
		return 0, fmt.Errorf("predict: model returned NaN")
	}
	return p, nil
}

// invalid returns an EINVALID domain error: everything this package rejects
// is input that the sender can fix.
func invalid(format string, args ...any) error {
	return modelfleet.Errorf(modelfleet.EINVALID, format, args...)
}
