// Registering a challenger that won: the registry emits ModelRegistered,
// which starts its release.

package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/modelfleet/modelfleet"
)

// RegisterRequest registers a retraining's winning challenger.
type RegisterRequest struct {
	Model      string                `json:"model"`
	JobID      string                `json:"jobId"`
	Cycle      int                   `json:"cycle"`
	Why        string                `json:"why,omitempty"`
	Ref        RunRef                `json:"ref"`
	Comparison modelfleet.Comparison `json:"comparison"`
}

// RegisterChallenger registers the run's model as the model's next version
// (highest numeric version + 1), validated on the holdout it won on, with
// tags and properties recording why: the triggers, the run, the champion's
// and the challenger's metric, the margin. The registry then emits
// ModelRegistered and a normal release starts. A second call for the same
// job returns the version the first one registered.
func (a *Retraining) RegisterChallenger(ctx context.Context, req RegisterRequest) (modelfleet.Model, error) {
	defer keepAlive(ctx)()
	all, err := a.Registry.List(ctx)
	if err != nil {
		return modelfleet.Model{}, fmt.Errorf("register %s: list versions: %w", req.Model, err)
	}
	next := 0
	for _, m := range all {
		if m.Name != req.Model {
			continue
		}
		if m.Tags[TagRetrainJob] == req.JobID {
			return m, nil // registered by an earlier attempt
		}
		if n, err := strconv.Atoi(m.Version); err == nil && n > next {
			next = n
		}
	}
	fetcher, ok := a.Runners[req.Ref.Kind].(modelfleet.TrainingOutputs)
	if !ok {
		return modelfleet.Model{}, nonRetryable(modelfleet.Errorf(modelfleet.EINVALID, "the outputs of %s runs cannot be read by the worker", req.Ref.Kind))
	}
	dir, err := fetcher.Outputs(ctx, req.Ref)
	if err != nil {
		return modelfleet.Model{}, classify(err)
	}
	cmp := req.Comparison
	m := modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: req.Model, Version: strconv.Itoa(next + 1)},
		Format:   modelfleet.FormatLightGBM, Features: cmp.Features,
		Tags: map[string]string{}, Properties: map[string]string{
			PropWhy: clip(req.Why, 1000), PropCycle: strconv.Itoa(req.Cycle), PropMetric: cmp.Metric,
			PropChallenger: fmtMetric(cmp.ChallengerValue), modelfleet.PropGateMargin: strconv.FormatFloat(cmp.Margin, 'g', -1, 64),
			PropHoldout: cmp.Holdout, PropHoldoutRows: strconv.Itoa(cmp.Rows), PropGate: clip(cmp.Reason, 1000),
		},
	}
	threshold := 0.0
	if cmp.Champion != "" {
		champ, err := a.Registry.Get(ctx, req.Model, cmp.Champion)
		if err != nil {
			return modelfleet.Model{}, classify(fmt.Errorf("register %s: champion %s: %w", req.Model, cmp.Champion, err))
		}
		for k, v := range champ.Tags { // the model's own tags (team, asset) carry over
			m.Tags[k] = v
		}
		if champ.Validation != nil && champ.Validation.Metric == cmp.Metric {
			threshold = champ.Validation.Threshold
		}
		m.Tags[TagRetrainedFrom] = cmp.Champion
		m.Properties[PropChampion] = cmp.Champion
		m.Properties[PropChampionValue] = fmtMetric(cmp.ChampionValue)
	}
	m.Tags[TagRetrainJob], m.Tags[TagRetrainRun], m.Tags[TagRetrainCompute] = req.JobID, req.Ref.ID, req.Ref.Kind
	validation := cmp.HoldoutPath
	if validation == "" && cmp.HoldoutDigest != "" {
		f, err := os.CreateTemp("", "modelfleet-holdout-*.csv")
		if err != nil {
			return modelfleet.Model{}, err
		}
		defer os.Remove(f.Name())
		_, err = a.Registry.Download(ctx, cmp.HoldoutURL, cmp.HoldoutDigest, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return modelfleet.Model{}, fmt.Errorf("register %s: holdout data: %w", req.Model, err)
		}
		validation = f.Name()
	}
	if validation != "" && cmp.Metric != "" {
		m.Validation = &modelfleet.ValidationSpec{Metric: cmp.Metric, Threshold: threshold}
	} else {
		validation = ""
	}
	out, _, err := a.Registry.Register(ctx, m, filepath.Join(dir, modelfleet.JobModelFile), validation)
	if err != nil {
		// A version taken meanwhile (ECONFLICT) is retried: the next
		// attempt lists again and takes the one after.
		return modelfleet.Model{}, classify(fmt.Errorf("register %s: %w", m.ModelRef, err))
	}
	logger(ctx).Info("challenger registered", "model", out.ModelRef.String(), "job", req.JobID, "reason", cmp.Reason)
	return out, nil
}
