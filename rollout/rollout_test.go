package rollout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func TestParseRejectsBadPolicies(t *testing.T) {
	for _, tt := range []struct{ name, doc, want string }{
		{"empty", ``, "empty"},
		{"not yaml", `waves: [`, "rollout policy"},
		{"unknown key", "aproval: {}\nwaves: [{name: a}]", "aproval"},
		{"no waves", `waves: []`, "at least one wave"},
		{"bad version", "apiVersion: v9\nwaves: [{name: a}]", "apiVersion"},
		{"dup names", "waves: [{name: a, select: {ring: c}}, {name: a}]", "duplicate wave name"},
		{"bad name", "waves: [{name: 'a b'}]", "wave name"},
		{"steps fall", "waves: [{name: a, steps: [50, 10, 100]}]", "rise strictly"},
		{"steps short", "waves: [{name: a, steps: [10, 50]}]", "must end at 100"},
		{"steps over", "waves: [{name: a, steps: [10, 150]}]", "between 1 and 100"},
		{"budget word", "waves: [{name: a, failureBudget: lots}]", "failureBudget"},
		{"budget pct", "waves: [{name: a, failureBudget: 120%}]", "failureBudget"},
		{"bake", "waves: [{name: a, bake: soon}]", "duration"},
		{"concurrency", "waves: [{name: a, maxConcurrent: -1}]", "maxConcurrent"},
		{"criteria", "waves: [{name: a, criteria: {maxErrorRate: 2}}]", "criteria"},
		{"criteria nan", "waves: [{name: a, criteria: {maxP99LatencyMs: .nan}}]", "criteria"},
		{"p99 beyond buckets", "waves: [{name: a, criteria: {maxP99LatencyMs: 5000}}]", "slowest latency bucket"},
		{"min samples negative", "waves: [{name: a, criteria: {maxErrorRate: 0.1, minRequests: -1}}]", "minRequests"},
		{"min samples huge", "waves: [{name: a, criteria: {minQuality: 0.9, minLabelled: 2000000000}}]", "minLabelled"},
		{"min predictions word", "waves: [{name: a, criteria: {minPredictions: many}}]", "rollout policy"},
		{"on inconclusive", "waves: [{name: a, onInconclusive: shrug}]", "onInconclusive"},
		{"max bake short", "waves: [{name: a, bake: 10m, maxBake: 5m}]", "maxBake"},
		{"max bake under a report", "waves: [{name: a, bake: 5s, maxBake: 20s, criteria: {maxErrorRate: 0.1}}]", "every 10 s"},
		{"bake too long", "waves: [{name: a, bake: 200h}]", "at most"},
		{"max bake too long", "waves: [{name: a, bake: 1h, maxBake: 1000h}]", "at most"},
		{"bake across close word", "waves: [{name: a, bakeAcrossClose: sometimes}]", "rollout policy"},
		{"catch-all first", "waves: [{name: a}, {name: b, select: {ring: x}}]", "selects every remaining site"},
		{"gate unknown", "waves: [{name: a}]\napproval: {after: [canary]}", `wave "canary"`},
		{"gate timeout", "waves: [{name: a}]\napproval: {after: [a], onTimeout: maybe}", "onTimeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) error = %v, want it to mention %q", tt.doc, err, tt.want)
			}
			if got := modelfleet.ErrorCode(err); got != modelfleet.EINVALID {
				t.Errorf("error code = %q, want %q", got, modelfleet.EINVALID)
			}
		})
	}
}

func TestParseFillsDefaults(t *testing.T) {
	p, err := Parse([]byte(`
waves:
  - name: canary
    select: {ring: canary}
    steps: [10, 100]
    bake: 90s
    failureBudget: 10%
  - name: fleet
    failureBudget: 2
approval:
  after: [canary]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Waves[0].Bake.Std(), 90*time.Second; got != want {
		t.Errorf("bake = %v, want %v", got, want)
	}
	if got, want := p.Waves[1].Steps, []int{100}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("default steps = %v, want %v", got, want)
	}
	if got, want := p.Approval.Timeout.Std(), DefaultApprovalTimeout; got != want {
		t.Errorf("approval timeout = %v, want %v", got, want)
	}
	if got, want := p.Approval.OnTimeout, OnTimeoutAbort; got != want {
		t.Errorf("onTimeout = %q, want %q", got, want)
	}
	if got, want := p.Waves[0].FailureBudget.Allowed(25), 2; got != want {
		t.Errorf("10%% of 25 = %d, want %d", got, want)
	}
	if got, want := p.Waves[1].FailureBudget.Allowed(25), 2; got != want {
		t.Errorf("count budget = %d, want %d", got, want)
	}
	if !p.GateAfter("canary") || p.GateAfter("fleet") {
		t.Error("gate should follow canary only")
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	if len(p.Waves) != 2 || !p.GateAfter("canary") {
		t.Fatalf("default policy = %+v, want canary + fleet with a gate after canary", p)
	}
}

func TestPlanAssignsEachSiteToItsFirstWave(t *testing.T) {
	p := Default()
	sites := []modelfleet.Site{
		{ID: "s3", Labels: map[string]string{"ring": "main"}},
		{ID: "s1", Labels: map[string]string{"ring": "canary"}},
		{ID: "s2"},
	}
	waves, unselected := p.Plan(sites)
	if got := ids(waves[0]); got != "s1" {
		t.Errorf("canary = %s, want s1", got)
	}
	if got := ids(waves[1]); got != "s2,s3" {
		t.Errorf("fleet = %s, want s2,s3", got)
	}
	if len(unselected) != 0 {
		t.Errorf("unselected = %v", unselected)
	}
	p2, _ := Parse([]byte("waves: [{name: only, select: {plant: a}}]"))
	if _, un := p2.Plan(sites); len(un) != 3 {
		t.Errorf("unselected = %d, want 3", len(un))
	}
}

func ids(ss []modelfleet.Site) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return strings.Join(out, ",")
}

func TestWindowState(t *testing.T) {
	w := mustWindow(t, "0 22 * * 1-5", "2h", "Europe/Berlin")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tt := range []struct {
		at    time.Time
		open  bool
		until time.Time
	}{
		// Wednesday 21:00: opens at 22:00.
		{time.Date(2026, 6, 10, 21, 0, 0, 0, berlin), false, time.Date(2026, 6, 10, 22, 0, 0, 0, berlin)},
		// Exactly at opening: open until midnight.
		{time.Date(2026, 6, 10, 22, 0, 0, 0, berlin), true, time.Date(2026, 6, 11, 0, 0, 0, 0, berlin)},
		// Past midnight, still inside Wednesday's window.
		{time.Date(2026, 6, 10, 23, 59, 0, 0, berlin), true, time.Date(2026, 6, 11, 0, 0, 0, 0, berlin)},
		// Closed at the closing instant; Friday night's window is next...
		{time.Date(2026, 6, 11, 0, 0, 0, 0, berlin), false, time.Date(2026, 6, 11, 22, 0, 0, 0, berlin)},
		// ...and after Friday's, Monday's (weekdays only).
		{time.Date(2026, 6, 13, 10, 0, 0, 0, berlin), false, time.Date(2026, 6, 15, 22, 0, 0, 0, berlin)},
		// The same instant seen from UTC gives the same answer.
		{time.Date(2026, 6, 10, 20, 30, 0, 0, time.UTC), true, time.Date(2026, 6, 11, 0, 0, 0, 0, berlin)},
	} {
		open, until := w.State(tt.at)
		if open != tt.open || !until.Equal(tt.until) {
			t.Errorf("State(%v) = %v, %v; want %v, %v", tt.at, open, until, tt.open, tt.until)
		}
	}
}

func TestWindowAcrossDST(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// A 02:30 opening does not exist on 2026-03-29 (02:00 -> 03:00): cron
	// skips that day.
	w := mustWindow(t, "30 2 * * *", "1h", "Europe/Berlin")
	if open, until := w.State(time.Date(2026, 3, 29, 1, 0, 0, 0, berlin)); open || !until.Equal(time.Date(2026, 3, 30, 2, 30, 0, 0, berlin)) {
		t.Errorf("spring forward: open=%v next=%v, want the opening of March 30", open, until)
	}
	// A window opening at 01:00 for 3h across the change lasts 3 real hours:
	// it closes at 05:00 CEST, not 04:00.
	w = mustWindow(t, "0 1 * * *", "3h", "Europe/Berlin")
	open, until := w.State(time.Date(2026, 3, 29, 1, 30, 0, 0, berlin))
	if !open || !until.Equal(time.Date(2026, 3, 29, 5, 0, 0, 0, berlin)) {
		t.Errorf("across spring forward: open=%v until=%v, want open until 05:00 CEST", open, until)
	}
	if got := until.Sub(time.Date(2026, 3, 29, 1, 0, 0, 0, berlin)); got != 3*time.Hour {
		t.Errorf("window length = %v, want 3h of elapsed time", got)
	}
	// Autumn: 2026-10-25 03:00 CEST -> 02:00 CET; a 02:30 opening happens in
	// the repeated hour, and the second 02:45 is inside a window.
	w = mustWindow(t, "30 2 * * *", "1h", "Europe/Berlin")
	second := time.Date(2026, 10, 25, 1, 45, 0, 0, time.UTC) // 02:45 CET
	if open, _ := w.State(second); !open {
		t.Errorf("fall back: 02:45 CET should be inside a window")
	}
}

func TestParseWindowRejectsBadInput(t *testing.T) {
	for _, w := range []modelfleet.MaintenanceWindow{
		{Schedule: "every night", Duration: "2h"},
		{Schedule: "0 22 * * *", Duration: "-1h"},
		{Schedule: "0 22 * * *", Duration: "forever"},
		{Schedule: "0 22 * * *", Duration: "200h"},
		{Schedule: "0 22 * * *", Duration: "2h", TimeZone: "Mars/Olympus"},
	} {
		if _, err := ParseWindow(w); err == nil || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("ParseWindow(%+v) error = %v, want EINVALID", w, err)
		}
	}
}

func mustWindow(t *testing.T, sched, dur, tz string) *Window {
	t.Helper()
	w, err := ParseWindow(modelfleet.MaintenanceWindow{Schedule: sched, Duration: dur, TimeZone: tz})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("waves: [{name: a, steps: [10, 100], failureBudget: 5%}]\napproval: {after: [a]}"))
	f.Add([]byte("waves: [{name: c, select: {ring: canary}}, {name: f}]"))
	f.Add([]byte("waves: [{name: a, bake: 1m, maxBake: 5m, onInconclusive: pause, criteria: {maxErrorRate: 0.01, maxP99LatencyMs: 50, minRequests: 20}}]"))
	f.Add([]byte("waves: [{name: a, onInconclusive: pass, criteria: {maxPredictionShift: 0.2, minPredictions: 10, minQuality: 0.9, minLabelled: 5}}]"))
	f.Add([]byte("waves: [{name: a, criteria: {maxP99LatencyMs: 3276.8}, maxBake: 168h}]"))
	f.Add([]byte("waves: [{name: a, bake: 30m, bakeAcrossClose: true}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		if err := p.Normalize(); err != nil {
			t.Fatalf("a parsed policy must stay valid: %v", err)
		}
	})
}

func TestParseAnalysisDefaults(t *testing.T) {
	p, err := Parse([]byte(`
waves:
  - {name: canary, select: {ring: canary}, criteria: {maxErrorRate: 0.01}}
  - {name: fleet, bake: 10m, maxBake: 1h, onInconclusive: pause, criteria: {minQuality: 0.9, minLabelled: 20}}
`))
	if err != nil {
		t.Fatal(err)
	}
	c, f := p.Waves[0], p.Waves[1]
	if c.Bake.Std() != DefaultBake || c.BakeLimit() != 3*DefaultBake || c.Inconclusive() != OnInconclusiveFail || c.OnInconclusive != OnInconclusiveFail {
		t.Errorf("canary: bake %v limit %v onInconclusive %q, want the defaults written out", c.Bake.Std(), c.BakeLimit(), c.OnInconclusive)
	}
	if c.Criteria.Requests() != DefaultMinRequests || c.Criteria.Predictions() != DefaultMinPredictions || c.Criteria.Labelled() != DefaultMinLabelled {
		t.Errorf("canary minimums %d %d %d, want the defaults", c.Criteria.Requests(), c.Criteria.Predictions(), c.Criteria.Labelled())
	}
	if f.BakeLimit() != time.Hour || f.Inconclusive() != OnInconclusivePause || f.Criteria.Labelled() != 20 {
		t.Errorf("fleet: limit %v onInconclusive %q minLabelled %d", f.BakeLimit(), f.Inconclusive(), f.Criteria.Labelled())
	}
	// A wave from a policy recorded before these fields (a running
	// release's history) fails an inconclusive window, never passes it.
	old := Wave{Bake: Duration(time.Minute)}
	if old.Inconclusive() != OnInconclusiveFail || old.BakeLimit() != 3*time.Minute {
		t.Errorf("zero wave: %q %v", old.Inconclusive(), old.BakeLimit())
	}
	if short := (Wave{Bake: Duration(2 * time.Second)}); short.BakeLimit() != MinAnalysisSpan {
		t.Errorf("2s bake: limit %v, want at least one report's worth, %v", short.BakeLimit(), MinAnalysisSpan)
	}
}

func TestWindowOpenFor(t *testing.T) {
	w, err := ParseWindow(modelfleet.MaintenanceWindow{Schedule: "0 22 * * *", Duration: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	for _, c := range []struct {
		name string
		t    time.Time
		d    time.Duration
		ok   bool
		next time.Time
	}{
		{"closed", at(12, 0), 10 * time.Minute, false, at(22, 0)},
		{"room to bake", at(22, 30), 30 * time.Minute, true, at(24, 0)},
		{"bake ends at the close", at(23, 30), 30 * time.Minute, true, at(24, 0)},
		{"bake would cross the close", at(23, 45), 30 * time.Minute, false, at(46, 0)},
		{"longer than the window", at(22, 0), 3 * time.Hour, false, at(46, 0)},
		{"no bake", at(23, 59), 0, true, at(24, 0)},
	} {
		ok, next := w.OpenFor(c.t, c.d)
		if ok != c.ok || !next.Equal(c.next) {
			t.Errorf("%s: OpenFor(%s, %s) = %v, %s; want %v, %s", c.name, c.t.Format("15:04"), c.d, ok, next, c.ok, c.next)
		}
	}
	if w.Duration() != 2*time.Hour {
		t.Errorf("duration %v", w.Duration())
	}
}

// The example's policies are what a newcomer copies: they must parse.
func TestExamplePoliciesParse(t *testing.T) {
	for _, name := range []string{"rollout.yaml", "rollout-gated.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", "bearing-failure", name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c := p.Waves[0]; !c.Criteria.Any() || c.BakeLimit() <= c.Bake.Std() {
			t.Errorf("%s: canary %+v, want criteria with room to extend an inconclusive bake", name, c)
		}
	}
}
