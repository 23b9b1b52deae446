package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/rollout"
)

// windowsPerStep versions gating every traffic step (not only a batch's
// first) by the sites' maintenance windows, with room for the step's bake
// (replay safety: recorded histories checked the window once per batch).
const windowsPerStep = "release-windows-per-step"

// nextBatch picks, in plan order, up to max sites (0: no limit) whose
// maintenance window is open at now with room for need after it, all
// continuing from the same step (the first picked site's). If none fits
// it returns when to look again: the earliest opening with room. A site
// with an unparseable window is never changed: the directory refuses bad
// windows, so this is defence only, and waiting is safer than guessing.
func nextBatch(now time.Time, sites []activities.PlannedSite, max int, need time.Duration) (batch, rest []activities.PlannedSite, opens time.Time) {
	for _, s := range sites {
		ok, next, err := fits(now, s, need)
		if err != nil {
			rest = append(rest, s)
			continue
		}
		if ok && (max == 0 || len(batch) < max) && (len(batch) == 0 || batch[0].FromStep == s.FromStep) {
			batch = append(batch, s)
			continue
		}
		rest = append(rest, s)
		if !ok && (opens.IsZero() || next.Before(opens)) {
			opens = next
		}
	}
	if opens.IsZero() {
		opens = now.Add(time.Hour) // only unparseable windows remain: look again later
	}
	return batch, rest, opens
}

// fits says whether a step applied to site s at now fits in its window
// with need to spare (a site without a window always fits); if not, next
// is when to look again.
func fits(now time.Time, s activities.PlannedSite, need time.Duration) (ok bool, next time.Time, err error) {
	if s.Window == nil {
		return true, time.Time{}, nil
	}
	w, err := rollout.ParseWindow(*s.Window)
	if err != nil {
		return false, time.Time{}, err
	}
	ok, next = w.OpenFor(now, need)
	return ok, next, nil
}

// holdOutsideWindows splits a batch before its step k: the sites whose
// window has room for the step go on; the others wait, at the step they
// reached, for their next window (held, to be batched again from step k).
func (r *release) holdOutsideWindows(ctx workflow.Context, batch []activities.PlannedSite, k int, need time.Duration) (ready, held []activities.PlannedSite) {
	now := workflow.Now(ctx)
	for _, s := range batch {
		ok, next, err := fits(now, s, need)
		if ok {
			ready = append(ready, s)
			continue
		}
		s.FromStep = k
		held = append(held, s)
		why := "maintenance window closed"
		if err == nil {
			why = "maintenance window closes before the step's bake ends; next opens " + next.UTC().Format(time.RFC3339)
		}
		r.setSite(ctx, s.ID, modelfleet.SiteWaitingForWindow, why)
	}
	return ready, held
}

// checkWindowRoom refuses, before any site changes, a plan whose wave
// bakes longer than a site's maintenance window is open: none of that
// site's steps could ever finish its bake inside a window.
func checkWindowRoom(plan activities.RolloutPlan) error {
	for i, sites := range plan.Waves {
		w := plan.Policy.Waves[i]
		room := w.WindowRoom()
		for _, s := range sites {
			if s.Window == nil || room == 0 {
				continue
			}
			win, err := rollout.ParseWindow(*s.Window)
			if err != nil {
				continue // held by nextBatch, as ever
			}
			if win.Duration() < room {
				return fmt.Errorf("wave %q bakes %s after each step, longer than site %q's maintenance window (%s): no step could finish its bake inside it; shorten the bake or set bakeAcrossClose: true", w.Name, room, s.ID, win.Duration())
			}
		}
	}
	return nil
}
