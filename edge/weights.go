package edge

import (
	"slices"

	"github.com/modelfleet/modelfleet"
)

// weighted is what the checks need of one loaded version.
type weighted struct {
	ref    modelfleet.ModelRef
	weight int
	shadow bool
}

// checkWeights checks the versions one model is to be served with: all of
// that model, each once, weights from 0 to 100 adding up to 100, shadows at
// 0. Store and router share it so that the router never refuses what was
// just written to state.json.
func checkWeights(name string, ws []weighted) error {
	seen := make(map[string]bool, len(ws))
	sum := 0
	for _, w := range ws {
		switch {
		case w.ref.Name != name:
			return modelfleet.Errorf(modelfleet.EINVALID, "model %s is not a version of model %q", w.ref, name)
		case seen[w.ref.Version]:
			return modelfleet.Errorf(modelfleet.EINVALID, "model %s is listed twice", w.ref)
		case w.weight < 0 || w.weight > 100:
			return modelfleet.Errorf(modelfleet.EINVALID, "model %s: weight %d is out of range: want a percentage from 0 to 100", w.ref, w.weight)
		case w.shadow && w.weight != 0:
			return modelfleet.Errorf(modelfleet.EINVALID, "model %s: a shadow version takes no traffic of its own, got weight %d", w.ref, w.weight)
		}
		seen[w.ref.Version] = true
		sum += w.weight
	}
	if len(ws) > 0 && sum != 100 {
		return modelfleet.Errorf(modelfleet.EINVALID, "model %q: weights add up to %d, want 100", name, sum)
	}
	return nil
}

// scale returns integer shares of total proportional to weights, adding up
// to total exactly (largest remainder, ties to the earlier entry). A weight
// of 0 stays 0, so rollback and shadow versions never get traffic by
// rounding. With all weights 0 every share is 0.
func scale(weights []int, total int) []int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	out := make([]int, len(weights))
	if sum == 0 {
		return out
	}
	order := make([]int, len(weights))
	given := 0
	for i, w := range weights {
		out[i] = w * total / sum
		given += out[i]
		order[i] = i
	}
	rem := func(i int) int { return weights[i] * total % sum }
	slices.SortStableFunc(order, func(a, b int) int { return rem(b) - rem(a) })
	// The shortfall is below the number of non-zero remainders, so only
	// entries with a positive weight are topped up.
	for _, i := range order[:total-given] {
		out[i]++
	}
	return out
}
