package rollout

import (
	"time"

	// Window arithmetic runs inside workflows, and a workflow replayed on
	// another worker must compute the same times there. With the zone
	// database compiled in, a worker whose host has no zoneinfo (scratch,
	// distroless, many edge images) resolves a window's IANA zone like the
	// others instead of failing ParseWindow midway through a history. The
	// time package still prefers the host's database where it finds one
	// (see TestEmbeddedTZData), so hosts with different tzdata releases can
	// disagree on a zone whose rules changed: keep images' tzdata current
	// or leave it out.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	"github.com/modelfleet/modelfleet"
)

// Window is a parsed maintenance window.
type Window struct {
	sched    cron.Schedule
	duration time.Duration
	loc      *time.Location
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseWindow validates a site's maintenance window.
func ParseWindow(w modelfleet.MaintenanceWindow) (*Window, error) {
	bad := func(format string, args ...any) error {
		return modelfleet.Errorf(modelfleet.EINVALID, "maintenance window: "+format, args...)
	}
	sched, err := cronParser.Parse(w.Schedule)
	if err != nil {
		return nil, bad("schedule %q: %v (want 5 cron fields, e.g. \"0 22 * * 1-5\")", w.Schedule, err)
	}
	d, err := time.ParseDuration(w.Duration)
	if err != nil || d <= 0 {
		return nil, bad("duration %q: want a positive duration such as 2h", w.Duration)
	}
	if d > 7*24*time.Hour {
		return nil, bad("duration %q is longer than a week", w.Duration)
	}
	loc := time.UTC
	if w.TimeZone != "" {
		if loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return nil, bad("time zone %q is not an IANA zone name (e.g. Europe/Berlin)", w.TimeZone)
		}
	}
	return &Window{sched: sched, duration: d, loc: loc}, nil
}

// State says whether the window is open at t. If open, until is when it
// closes; if closed, until is when it next opens. DST follows cron: an
// opening that falls in the hour skipped in spring does not happen that day,
// one in the hour repeated in autumn happens twice; the duration is elapsed
// time, so a window spanning a change is as long as it says. Sites that must
// not lose a day should open outside 02:00-03:00 local time.
func (w *Window) State(t time.Time) (open bool, until time.Time) {
	t = t.In(w.loc)
	// The latest opening in (t-duration, t] means t is inside that window.
	if start := w.sched.Next(t.Add(-w.duration)); !start.After(t) {
		return true, start.Add(w.duration)
	}
	return false, w.sched.Next(t)
}

// Duration is how long the window stays open each time it opens.
func (w *Window) Duration() time.Duration { return w.duration }

// OpenFor says whether a change made at t, with d to watch it afterwards,
// fits inside the window: open at t and still open at t+d. If not, next is
// when to look again: the next opening (for an open window too short for
// d, the one after it closes). A d longer than the window never fits.
func (w *Window) OpenFor(t time.Time, d time.Duration) (ok bool, next time.Time) {
	open, until := w.State(t)
	if !open {
		return false, until
	}
	if !t.Add(d).After(until) {
		return true, until
	}
	_, next = w.State(until)
	return false, next
}
