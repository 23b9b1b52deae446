package ui

import (
	"context"
	"slices"
	"time"

	"github.com/modelfleet/modelfleet"
)

// RetrainView is what the drift page shows of a model's retraining: the
// retraining workflow's status query, as far as the page needs it (the
// JSON of workflows.RetrainStatus decodes into it).
type RetrainView struct {
	Model  string             `json:"model"`
	Stage  string             `json:"stage"`
	Reason string             `json:"reason,omitempty"`
	Until  string             `json:"until,omitempty"`
	Cycles []RetrainCycleView `json:"cycles,omitempty"` // finished, oldest first
	// Current is the cycle in progress, if any.
	Current *RetrainCycleView `json:"current,omitempty"`
}

// RetrainCycleView is one retraining cycle: why it ran, how it ended, and
// the challenger against the champion on the holdout.
type RetrainCycleView struct {
	Number     int                    `json:"number"`
	OpenedAt   string                 `json:"openedAt"`
	FinishedAt string                 `json:"finishedAt,omitempty"`
	Why        string                 `json:"why,omitempty"`
	Result     string                 `json:"result,omitempty"`
	Outcome    string                 `json:"outcome,omitempty"`
	Evaluation *modelfleet.Comparison `json:"evaluation,omitempty"`
	Registered *modelfleet.ModelRef   `json:"registered,omitempty"`
}

// How many models' retraining a drift page asks about, how many cycles it
// shows of each, and how long it waits for the answers.
const (
	maxRetrainModels = 10
	retrainCycles    = 5
	retrainTimeout   = 2 * time.Second
)

// retraining asks Config.Retraining about each model (the first
// maxRetrainModels, sorted), newest cycles first; a model never retrained
// (nil) is left out, and so is one whose status cannot be read now.
func (h *Handler) retraining(ctx context.Context, models []string) []RetrainView {
	if h.cfg.Retraining == nil {
		return nil
	}
	slices.Sort(models)
	models = slices.Compact(models)
	ctx, cancel := context.WithTimeout(ctx, retrainTimeout)
	defer cancel()
	var out []RetrainView
	for _, m := range models[:min(len(models), maxRetrainModels)] {
		v, err := h.cfg.Retraining(ctx, m)
		if err != nil {
			h.cfg.Logger.Warn("ui: retraining status", "model", m, "err", err)
			continue
		}
		if v == nil {
			continue
		}
		cycles := slices.Clone(v.Cycles)
		slices.Reverse(cycles)
		v.Cycles = cycles[:min(len(cycles), retrainCycles)]
		out = append(out, *v)
	}
	return out
}
