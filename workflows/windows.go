package workflows

import (
	"time"

	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/rollout"
)

// nextBatch picks, in plan order, up to max sites (0: no limit) whose
// maintenance window is open at now. If none is open it returns when the
// earliest window opens. A site with an unparseable window is never
// changed: the directory refuses bad windows, so this is defence only, and
// waiting is safer than guessing.
func nextBatch(now time.Time, sites []activities.PlannedSite, max int) (batch, rest []activities.PlannedSite, opens time.Time) {
	for _, s := range sites {
		open, until := true, time.Time{}
		if s.Window != nil {
			w, err := rollout.ParseWindow(*s.Window)
			if err != nil {
				rest = append(rest, s)
				continue
			}
			open, until = w.State(now)
		}
		if open && (max == 0 || len(batch) < max) {
			batch = append(batch, s)
			continue
		}
		rest = append(rest, s)
		if !open && (opens.IsZero() || until.Before(opens)) {
			opens = until
		}
	}
	if opens.IsZero() {
		opens = now.Add(time.Hour) // only unparseable windows remain: look again later
	}
	return batch, rest, opens
}
