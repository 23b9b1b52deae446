package workflows

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/rollout"
)

// dailyWindow opens every day at the test environment's start (to the
// minute) for d.
func dailyWindow(t *testing.T, d string) *modelfleet.MaintenanceWindow {
	var s testsuite.WorkflowTestSuite
	open := s.NewTestWorkflowEnvironment().Now().UTC().Truncate(time.Minute)
	return &modelfleet.MaintenanceWindow{Schedule: strconv.Itoa(open.Minute()) + " " + strconv.Itoa(open.Hour()) + " * * *", Duration: d}
}

// assertInWindow fails if any step was applied to a site outside its
// window, or with less than room left in it.
func assertInWindow(t *testing.T, h *harness, windows map[string]*modelfleet.MaintenanceWindow, room time.Duration) {
	t.Helper()
	for n, req := range h.steps {
		for _, site := range req.Sites {
			mw := windows[site]
			if mw == nil {
				continue
			}
			w, err := rollout.ParseWindow(*mw)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := w.OpenFor(h.stepAt[n], room); !ok {
				t.Errorf("step %d%% applied to %s at %s: outside its window or too close to its close", req.New.Weight, site, h.stepAt[n].Format(time.RFC3339))
			}
		}
	}
}

// A batch whose window closes before a step's bake would end waits, at the
// step it reached, for the next window; no step is applied outside one.
func TestEveryStepWaitsForRoomInTheWindow(t *testing.T) {
	win := dailyWindow(t, "30m")
	// Steps at 0, 12 and 24 minutes: the third would bake past the close.
	h := newHarness(t, "waves: [{name: all, steps: [10, 50, 100], bake: 12m}]", []activities.PlannedSite{{ID: "s1", Window: win}})
	var mid modelfleet.ReleaseStatus
	h.env.RegisterDelayedCallback(func() { mid = h.status() }, 2*time.Hour)
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q, err %v", st.State, err)
	}
	if len(h.steps) != 3 {
		t.Fatalf("steps = %d, want 3", len(h.steps))
	}
	if gap := h.stepAt[2].Sub(h.stepAt[0]); gap < 23*time.Hour {
		t.Errorf("the 100%% step came %v after the first: want it in the next day's window", gap)
	}
	assertInWindow(t, h, map[string]*modelfleet.MaintenanceWindow{"s1": win}, 12*time.Minute)
	if s := mid.Sites[0]; s.State != modelfleet.SiteWaitingForWindow || !strings.Contains(s.Reason, "opens") {
		t.Errorf("mid status %+v, want s1 waiting for its window", s)
	}
	if mid.Waves[0].Weight != 50 {
		t.Errorf("mid weight %d, want the site held at 50%%", mid.Waves[0].Weight)
	}
	if len(h.finished) != 1 {
		t.Errorf("leases freed %v, want s1 once", h.finished)
	}
}

func TestBakeAcrossCloseLetsTheStepRunInTheSameWindow(t *testing.T) {
	win := dailyWindow(t, "30m")
	h := newHarness(t, "waves: [{name: all, steps: [10, 50, 100], bake: 12m, bakeAcrossClose: true}]", []activities.PlannedSite{{ID: "s1", Window: win}})
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q, err %v", st.State, err)
	}
	if gap := h.stepAt[2].Sub(h.stepAt[0]); gap > 30*time.Minute {
		t.Errorf("the 100%% step came %v after the first: want it in the same window", gap)
	}
	assertInWindow(t, h, map[string]*modelfleet.MaintenanceWindow{"s1": win}, 0)
}

// In one batch, the site with room goes on; the other waits for its next
// window and finishes from the step it reached.
func TestASiteWithoutRoomIsHeldWhileTheBatchGoesOn(t *testing.T) {
	// The window opened up to a minute before the test's start: with 9m
	// bakes the 50% step fits in s1's 20 minutes, the 100% step does not.
	short, long := dailyWindow(t, "20m"), dailyWindow(t, "2h")
	windows := map[string]*modelfleet.MaintenanceWindow{"s1": short, "s2": long}
	h := newHarness(t, "waves: [{name: all, steps: [10, 50, 100], bake: 9m}]", []activities.PlannedSite{{ID: "s1", Window: short}, {ID: "s2", Window: long}})
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("state %q, err %v", st.State, err)
	}
	var got []string
	for _, s := range h.steps {
		got = append(got, strings.Join(s.Sites, "+")+"@"+strconv.Itoa(s.New.Weight))
	}
	if want := "s1+s2@10 s1+s2@50 s2@100 s1@100"; strings.Join(got, " ") != want {
		t.Errorf("steps = %v, want %s", got, want)
	}
	assertInWindow(t, h, windows, 9*time.Minute)
	for _, s := range st.Sites {
		if s.State != modelfleet.SiteHealthy {
			t.Errorf("site %s = %q, want healthy", s.Site, s.State)
		}
	}
	if len(h.finished) != 2 {
		t.Errorf("leases freed %v, want each site once", h.finished)
	}
}

func TestABakeLongerThanAWindowIsRefusedBeforeAnySiteChanges(t *testing.T) {
	h := newHarness(t, "waves: [{name: all, bake: 3h}]", []activities.PlannedSite{{ID: "s1", Window: dailyWindow(t, "2h")}})
	st, err := h.run()
	if err == nil || !strings.Contains(err.Error(), `longer than site "s1"'s maintenance window`) || !strings.Contains(err.Error(), "bakeAcrossClose") {
		t.Fatalf("err %v, want the bake refused against the window", err)
	}
	if len(h.steps) != 0 || st.State != modelfleet.StateFailed {
		t.Errorf("state %q after %d steps, want failed before any", st.State, len(h.steps))
	}
}

// Recorded histories gated only a batch's start: replayed, they still do.
func TestLegacyWindowsGateOnlyTheBatchStart(t *testing.T) {
	win := dailyWindow(t, "30m")
	h := newHarness(t, "waves: [{name: all, steps: [10, 50, 100], bake: 12m}]", []activities.PlannedSite{{ID: "s1", Window: win}})
	h.env.OnGetVersion(windowsPerStep, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	if _, err := h.run(); err != nil {
		t.Fatal(err)
	}
	if gap := h.stepAt[2].Sub(h.stepAt[0]); gap > time.Hour {
		t.Errorf("legacy: last step %v after the first, want it straight on", gap)
	}
}
