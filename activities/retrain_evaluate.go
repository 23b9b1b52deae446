// The champion/challenger comparison: a retraining run's output, or a
// registered version at its release's gate, against the champion on the
// holdout set.

package activities

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
)

// EvaluateRequest compares a retraining run's output with the champion.
type EvaluateRequest struct {
	Model  string  `json:"model"`
	Ref    RunRef  `json:"ref"`
	Margin float64 `json:"margin"`
}

// EvaluateChallenger scores the run's model.txt and the champion on the
// holdout set: the policy's Holdout, else <DataDir>/<model>/holdout.csv,
// else the champion's declared validation set. A challenger that does not
// load, or no data to judge it on, is a failed comparison (a result, not
// an error); a model with no champion yet passes.
func (a *Retraining) EvaluateChallenger(ctx context.Context, req EvaluateRequest) (modelfleet.Comparison, error) {
	defer keepAlive(ctx)()
	c := modelfleet.Comparison{Model: req.Model, Challenger: "run " + req.Ref.ID, Margin: req.Margin}
	fetcher, ok := a.Runners[req.Ref.Kind].(modelfleet.TrainingOutputs)
	if !ok {
		return c, nonRetryable(modelfleet.Errorf(modelfleet.EINVALID,
			"the outputs of %s runs cannot be read by the worker yet: register the model from the job output in Azure ML instead", req.Ref.Kind))
	}
	dir, err := fetcher.Outputs(ctx, req.Ref)
	if err != nil {
		return c, classify(fmt.Errorf("outputs of run %s: %w", req.Ref.ID, err))
	}
	challenger, err := readLimited(filepath.Join(dir, modelfleet.JobModelFile), a.limit())
	if err != nil {
		return c, nonRetryable(fmt.Errorf("run %s output: %w", req.Ref.ID, err))
	}
	c.ChallengerMetrics, _ = modelfleet.ReadJobMetrics(filepath.Join(dir, modelfleet.JobMetricsFile))
	champ, err := a.champion(ctx, req.Model)
	if err != nil {
		return c, err
	}
	p, _ := a.Policies.For(req.Model)
	data, err := a.holdout(ctx, &c, req.Model, p.Holdout, champ, nil)
	if err != nil {
		return c, err
	}
	if data == nil {
		c.Reason = fmt.Sprintf("no labelled holdout data to judge the challenger on: put one at %s", filepath.Join(a.DataDir, req.Model, "holdout.csv"))
		return c, nil
	}
	var declared []string
	metric := modelfleet.MetricAUC
	if champ != nil {
		declared = champ.Features
		if champ.Validation != nil {
			metric = champ.Validation.Metric
		}
	}
	return a.compare(ctx, c, challenger, declared, champ, metric, data), nil
}

// GateRequest asks whether a registered version may roll out.
type GateRequest struct {
	Model  modelfleet.ModelRef `json:"model"`
	Margin float64             `json:"margin"`
}

// CheckChampion is the champion/challenger gate of a release: the
// registered version against the champion, on the version's declared
// validation set (else the champion's), with the version's declared metric
// (else the champion's). Without a champion, or without labelled data, it
// passes uncompared, saying so.
func (a *Retraining) CheckChampion(ctx context.Context, req GateRequest) (modelfleet.Comparison, error) {
	defer keepAlive(ctx)()
	c := modelfleet.Comparison{Model: req.Model.Name, Challenger: req.Model.Version, Margin: req.Margin}
	if err := req.Model.Validate(); err != nil {
		return c, nonRetryable(err)
	}
	champ, err := a.champion(ctx, req.Model.Name)
	if err != nil {
		return c, err
	}
	switch {
	case champ == nil:
		c.Passed, c.Reason = true, "no champion yet: nothing to beat"
		return c, nil
	case champ.Version == req.Model.Version:
		c.Champion = champ.Version
		c.Passed, c.Reason = true, "this version is the champion"
		return c, nil
	}
	m, err := a.Registry.Get(ctx, req.Model.Name, req.Model.Version)
	if err != nil {
		return c, classify(fmt.Errorf("gate %s: %w", req.Model, err))
	}
	if m.Format == modelfleet.FormatOIP || champ.Format == modelfleet.FormatOIP {
		// The worker cannot run an external model server.
		c.Champion = champ.Version
		c.Passed, c.Reason = true, fmt.Sprintf("this version or the champion %s runs in an external model server: not compared", champ.Version)
		return c, nil
	}
	artifact, err := a.download(ctx, m.ArtifactURL, m.Digest)
	if err != nil {
		return c, fmt.Errorf("gate %s: artifact: %w", req.Model, err)
	}
	data, err := a.holdout(ctx, &c, req.Model.Name, "", champ, m.Validation)
	if err != nil {
		return c, err
	}
	if data == nil {
		c.Champion = champ.Version
		c.Passed, c.Reason = true, fmt.Sprintf("neither this version nor the champion %s declares labelled validation data: not compared", champ.Version)
		return c, nil
	}
	metric := modelfleet.MetricAUC
	switch {
	case m.Validation != nil:
		metric = m.Validation.Metric
	case champ.Validation != nil:
		metric = champ.Validation.Metric
	}
	declared := m.Features
	if len(declared) == 0 {
		declared = champ.Features
	}
	return a.compare(ctx, c, artifact, declared, champ, metric, data), nil
}

// compare scores both models on data and decides.
func (a *Retraining) compare(ctx context.Context, c modelfleet.Comparison, challenger []byte, declared []string, champ *modelfleet.Model, metric string, data []byte) modelfleet.Comparison {
	c.Metric = metric
	cm, err := inference.Load("", challenger) // whatever the trainer wrote, by its content
	if err != nil {
		c.Reason = "the challenger does not load: " + modelfleet.ErrorMessage(err)
		return c
	}
	c.Features = featuresOf(cm, declared)
	var rows int
	c.ChallengerValue, rows, err = score(cm, c.Features, data, metric)
	if err != nil {
		c.Reason = "the challenger cannot be scored on the holdout data: " + modelfleet.ErrorMessage(err)
		return c
	}
	c.Rows = rows
	if champ == nil {
		c.Passed, c.Reason = true, fmt.Sprintf("no champion yet: nothing to beat (challenger %s %.4f on %d rows)", metric, c.ChallengerValue, rows)
		return c
	}
	c.Champion = champ.Version
	art, err := a.download(ctx, champ.ArtifactURL, champ.Digest)
	if err != nil {
		c.Reason = "the champion's artifact cannot be read: " + err.Error()
		return c
	}
	chm, err := inference.Load(champ.Format, art)
	if err != nil {
		c.Passed, c.Reason = true, fmt.Sprintf("the champion %s does not load (%s): not compared", champ.Version, modelfleet.ErrorMessage(err))
		return c
	}
	if c.ChampionValue, _, err = score(chm, featuresOf(chm, champ.Features), data, metric); err != nil {
		c.Passed, c.Reason = true, fmt.Sprintf("the champion %s cannot be scored on this data (%s): not compared", champ.Version, modelfleet.ErrorMessage(err))
		return c
	}
	c.Compared = true
	// diff is how much better the challenger is: lower is better for an
	// error metric (RMSE, MAE, log-loss).
	diff := c.ChallengerValue - c.ChampionValue
	if modelfleet.LowerIsBetter(metric) {
		diff = -diff
	}
	c.Passed = diff >= c.Margin-1e-9
	switch {
	case c.Passed && c.Margin > 0:
		c.Reason = fmt.Sprintf("challenger %s %.4f beats champion %s's %.4f by %.4f (margin %g) on %d rows", metric, c.ChallengerValue, champ.Version, c.ChampionValue, diff, c.Margin, rows)
	case c.Passed:
		c.Reason = fmt.Sprintf("challenger %s %.4f is no worse than champion %s's %.4f (difference %+.4f, margin 0) on %d rows", metric, c.ChallengerValue, champ.Version, c.ChampionValue, diff, rows)
	case c.Margin > 0:
		c.Reason = fmt.Sprintf("challenger %s %.4f does not beat champion %s's %.4f by %g (difference %+.4f, %d rows)", metric, c.ChallengerValue, champ.Version, c.ChampionValue, c.Margin, diff, rows)
	default:
		c.Reason = fmt.Sprintf("challenger %s %.4f is worse than champion %s's %.4f (difference %+.4f, %d rows)", metric, c.ChallengerValue, champ.Version, c.ChampionValue, diff, rows)
	}
	return c
}

// holdout finds the labelled data to compare on, records where it came
// from in c, and returns it (nil: none). Order: the policy's holdout file,
// <DataDir>/<model>/holdout.csv, the challenger's declared validation set
// (gate only), the champion's.
func (a *Retraining) holdout(ctx context.Context, c *modelfleet.Comparison, model, policyPath string, champ *modelfleet.Model, own *modelfleet.ValidationSpec) ([]byte, error) {
	path := policyPath
	if path == "" && own == nil && a.DataDir != "" {
		if p := filepath.Join(a.DataDir, model, "holdout.csv"); fileExists(p) {
			path = p
		}
	}
	if path != "" {
		b, err := readLimited(path, a.limit())
		if err != nil {
			return nil, nonRetryable(fmt.Errorf("holdout data: %w", err))
		}
		c.Holdout, c.HoldoutPath = path, path
		return b, nil
	}
	spec, whose := own, "the version's validation set"
	if spec == nil && champ != nil && champ.Validation != nil {
		spec, whose = champ.Validation, "champion "+champ.Version+"'s validation set"
	}
	if spec == nil {
		return nil, nil
	}
	b, err := a.download(ctx, spec.DataURL, spec.DataDigest)
	if err != nil {
		return nil, fmt.Errorf("holdout data (%s): %w", whose, err)
	}
	c.Holdout, c.HoldoutURL, c.HoldoutDigest = whose, spec.DataURL, spec.DataDigest
	return b, nil
}
