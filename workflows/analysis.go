package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/rollout"
)

// bakeWindowAnalysis versions judging a wave's criteria over each bake
// window, with minimum samples and inconclusive windows (analyse), instead
// of once after the bake on the sites' lifetime figures (checkCriteria).
// Histories recorded before replay the old way.
const bakeWindowAnalysis = "release-bake-window-analysis"

// eventsPerRead estimates the history events of one progress read (an
// activity and the workflow task around it); eventsPerExtension those of
// one extension of a bake (a timer and a read).
const (
	eventsPerRead      = 6
	eventsPerExtension = 10
)

// analyse bakes the batch and judges the wave's criteria over the bake
// window: from start (the counters read when the step converged) to the
// bake's end. An inconclusive window (a criterion below its minimum of
// samples, or an agent restarted) extends the bake by another bake, up to
// the wave's maxBake; then the wave's onInconclusive decides: fail (a
// breach, rolled back), pass, or pause for an operator. Never a silent
// pass: every window's figures are in the wave's status.
func (r *release) analyse(ctx workflow.Context, i int, batch []string, weight int, start *modelfleet.Counters, reference []int64) error {
	w := r.planned.Policy.Waves[i]
	if len(batch) == 0 {
		return nil
	}
	var from modelfleet.Counters
	if start != nil {
		from = *start
	}
	began := workflow.Now(ctx)
	entry := r.addAnalysis(i, modelfleet.BakeAnalysis{Step: weight, Sites: len(batch), From: stamp(ctx), Verdict: modelfleet.VerdictMeasuring})
	bake, limit := w.Bake.Std(), w.BakeLimit()
	if bake <= 0 {
		// A policy recorded before Normalize gave criteria a bake.
		bake, limit = rollout.DefaultBake, max(limit, rollout.DefaultBake)
	}
	d := bake
	for {
		skipped, err := r.bakeFor(ctx, i, batch, d)
		if err != nil {
			return err
		}
		p, err := r.await(ctx, batch, 0)
		if err != nil {
			return fmt.Errorf("wave %q: read the sites' counters: %w", w.Name, err)
		}
		var end modelfleet.Counters
		if p.Counters != nil {
			end = *p.Counters
		}
		results := w.Criteria.Analyze(from, end, reference)
		verdict := rollout.Verdict(results)
		a := entry()
		a.To, a.Verdict, a.Criteria, a.Sites = stamp(ctx), verdict, results, end.Sites
		switch verdict {
		case modelfleet.VerdictPass:
			return nil
		case modelfleet.VerdictFail:
			return breach("wave %q: step %d%%: %s", w.Name, weight, failed(results))
		}
		if ok, _ := rollout.Comparable(from, end); !ok {
			// An agent restarted (or the sites changed): measure anew
			// from here.
			from = end
		}
		if skipped {
			a.Outcome = "passed: bake skipped by " + lastBy(r.ctl.log, modelfleet.SignalSkipBake)
			return nil
		}
		if elapsed := workflow.Now(ctx).Sub(began); elapsed < limit {
			a.Extended++
			d = min(bake, limit-elapsed)
			r.events += eventsPerExtension
			continue
		}
		why := fmt.Sprintf("wave %q: step %d%%: inconclusive after %s: %s", w.Name, weight, workflow.Now(ctx).Sub(began).Round(time.Second), inconclusive(results))
		switch w.Inconclusive() {
		case rollout.OnInconclusivePass:
			a.Outcome = "passed by policy (onInconclusive: pass)"
			return nil
		case rollout.OnInconclusivePause:
			a.Outcome = "paused by policy (onInconclusive: pause)"
			r.ctl.paused = true
			r.ctl.log = append(r.ctl.log, modelfleet.ControlRecord{Action: modelfleet.SignalPause, By: "analysis", Reason: why, At: stamp(ctx), Wave: w.Name})
			r.status.Controls, r.status.Paused = r.ctl.log, true
			if err := r.checkpoint(ctx); err != nil {
				return err
			}
			entry().Outcome = "paused by policy (onInconclusive: pause); resumed by " + lastBy(r.ctl.log, modelfleet.SignalResume)
			return nil
		default:
			a.Outcome = "failed by policy (onInconclusive: fail)"
			return breach("%s", why)
		}
	}
}

// addAnalysis appends a to the wave's analyses, keeping the last
// MaxAnalyses, and returns a getter for it (the slice moves as it grows).
func (r *release) addAnalysis(i int, a modelfleet.BakeAnalysis) func() *modelfleet.BakeAnalysis {
	ws := &r.status.Waves[i]
	ws.Analyses = append(ws.Analyses, a)
	if n := len(ws.Analyses); n > modelfleet.MaxAnalyses {
		ws.Analyses = append([]modelfleet.BakeAnalysis(nil), ws.Analyses[n-modelfleet.MaxAnalyses:]...)
	}
	return func() *modelfleet.BakeAnalysis { return &ws.Analyses[len(ws.Analyses)-1] }
}

// failed names the failed criteria with their figures, for the breach.
func failed(rs []modelfleet.CriterionResult) string {
	var out []string
	for _, r := range rs {
		if r.Verdict == modelfleet.VerdictFail {
			out = append(out, describe(r))
		}
	}
	return strings.Join(out, "; ")
}

func inconclusive(rs []modelfleet.CriterionResult) string {
	var out []string
	for _, r := range rs {
		if r.Verdict == modelfleet.VerdictInconclusive {
			out = append(out, r.Name+": "+r.Note)
		}
	}
	return strings.Join(out, "; ")
}

func describe(r modelfleet.CriterionResult) string {
	switch r.Name {
	case rollout.CriterionErrorRate:
		return fmt.Sprintf("error rate %.4f over %d requests in the bake window exceeds %.4f", r.Value, r.Samples, r.Threshold)
	case rollout.CriterionP99Latency:
		return fmt.Sprintf("p99 latency %.1f ms over %d requests in the bake window exceeds %.1f ms", r.Value, r.Samples, r.Threshold)
	case rollout.CriterionPredictionShift:
		return fmt.Sprintf("prediction shift %.3f (%s) exceeds %.3f", r.Value, r.Note, r.Threshold)
	case rollout.CriterionQuality:
		return fmt.Sprintf("accuracy %.3f over %d labelled predictions in the bake window is below %.3f", r.Value, r.Samples, r.Threshold)
	}
	return fmt.Sprintf("%s %g (threshold %g, %d samples)", r.Name, r.Value, r.Threshold, r.Samples)
}
