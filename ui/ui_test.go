package ui

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/queue"
)

var now = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

type sites []modelfleet.Site

func (s sites) List() ([]modelfleet.Site, error) { return s, nil }

type releases struct {
	mu     sync.Mutex
	status modelfleet.ReleaseStatus
}

func (r *releases) ListReleases(context.Context, string, int) ([]modelfleet.ReleaseSummary, error) {
	return []modelfleet.ReleaseSummary{{Model: r.status.Model, State: r.status.State, Workflow: r.status.WorkflowID(), StartedAt: now}}, nil
}

func (r *releases) ReleaseStatus(_ context.Context, id string) (modelfleet.ReleaseStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id != r.status.WorkflowID() {
		return modelfleet.ReleaseStatus{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no release %s", id)
	}
	return r.status, nil
}

// fleetOf makes n sites over two plants, site-i serving m:1 or, every
// third, m:2; every tenth has not reported for an hour.
func fleetOf(n int) sites {
	var out sites
	for i := 1; i <= n; i++ {
		v, seen := "1", now.Add(-10*time.Second)
		if i%3 == 0 {
			v = "2"
		}
		if i%10 == 0 {
			seen = now.Add(-time.Hour)
		}
		out = append(out, modelfleet.Site{
			ID: fmt.Sprintf("site-%d", i), Labels: map[string]string{"plant": fmt.Sprintf("plant-%c", 'a'+i%2)},
			Serving: []modelfleet.ServedModel{{ModelRef: modelfleet.ModelRef{Name: "m", Version: v}}}, LastSeen: seen.Format(time.RFC3339),
		})
	}
	return out
}

// as wraps h as the guard does, with a principal holding roles.
func as(h http.Handler, roles ...string) http.Handler {
	p := &auth.Principal{Kind: auth.KindPerson, Subject: "someone@example.com"}
	for _, r := range roles {
		p.Grants = append(p.Grants, auth.Grant{Role: r})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

func newHandler(t *testing.T, cfg Config) *Handler {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

var siteRowRE = regexp.MustCompile(`<tr data-site="(site-\d+)"`)

func rowsOf(body string) []string {
	var out []string
	for _, m := range siteRowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestFleetPagesFiltersAndCounts(t *testing.T) {
	h := as(newHandler(t, Config{Sites: fleetOf(1000)}), auth.RoleViewer)
	code, body := get(t, h, "/ui/fleet")
	if code != http.StatusOK {
		t.Fatalf("fleet: %d %s", code, body)
	}
	rows := rowsOf(body)
	if len(rows) != DefaultPageSize {
		t.Errorf("first page has %d rows, want %d", len(rows), DefaultPageSize)
	}
	// Grouped by plant, naturally ordered: plant-a holds the even sites.
	if rows[0] != "site-2" || rows[1] != "site-4" {
		t.Errorf("first rows %v, want site-2, site-4 (plant-a, natural order)", rows[:2])
	}
	// Counts cover the whole filtered fleet, not the page: 333 sites
	// serve m:2, 667 m:1; 100 are offline.
	for _, want := range []string{`>1</span></td><td>667<`, `>2</span></td><td>333<`, "1000 of 1000 sites", "100 not online", "page 1 of 10"} {
		if !strings.Contains(body, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}
	_, body = get(t, h, "/ui/fleet?page=10")
	if rows := rowsOf(body); len(rows) != 100 || rows[len(rows)-1] != "site-999" {
		t.Errorf("last page: %d rows ending %v", len(rows), rows[len(rows)-1:])
	}
	// Filters: version, label and status combine.
	_, body = get(t, h, "/ui/fleet?version=2&label=plant%3Dplant-b&status=offline")
	rows = rowsOf(body)
	// Odd multiples of 3 that are multiples of 10: none (a multiple of 10
	// is even); even ones are plant-a.
	if len(rows) != 0 {
		t.Errorf("version 2, plant-b, offline: %v, want none", rows)
	}
	_, body = get(t, h, "/ui/fleet?version=2&label=plant%3Dplant-a&status=offline")
	if rows := rowsOf(body); len(rows) != 33 || rows[0] != "site-30" {
		t.Errorf("version 2, plant-a, offline: %d rows from %v, want 33 from site-30", len(rows), rows[:min(1, len(rows))])
	}
	if code, _ := get(t, h, "/ui/fleet?label=nolabel"); code != http.StatusBadRequest {
		t.Errorf("a label filter without '=': %d, want 400", code)
	}
}

func gated() *releases {
	return &releases{status: modelfleet.ReleaseStatus{
		Model: modelfleet.ModelRef{Name: "m", Version: "2"}, State: modelfleet.StateAwaitingApproval,
		Gate: &modelfleet.GateStatus{After: "canary", Since: "x", Deadline: "y", OnTimeout: "abort"},
		Waves: []modelfleet.WaveStatus{
			{Name: "canary", State: "healthy", Sites: 1, Failed: 0, Budget: 1, Analyses: []modelfleet.BakeAnalysis{{Verdict: "pass", Criteria: []modelfleet.CriterionResult{{Name: "errorRate", Value: 0.004, Threshold: 0.05, Verdict: "pass"}}}}},
			{Name: "fleet", State: "pending", Sites: 2, BakeUntil: now.Add(90 * time.Second).Format(time.RFC3339)},
		},
		Sites: []modelfleet.SiteStatus{{Site: "site-1", Wave: "canary", State: modelfleet.SiteDeploying}, {Site: "site-2", Wave: "fleet", State: modelfleet.SitePending}},
	}}
}

func TestReleasePageShowsReportsAndButtonsByRole(t *testing.T) {
	fl := fleetOf(2)
	fl[0].Serving = []modelfleet.ServedModel{{ModelRef: modelfleet.ModelRef{Name: "m", Version: "2"}, LoadedAt: now.Format(time.RFC3339)}}
	var sent []string
	rel := gated()
	h := newHandler(t, Config{Sites: fl, Releases: rel, TemporalUI: "http://temporal:8233",
		Control: func(_ context.Context, p *auth.Principal, release, action, reason string) error {
			sent = append(sent, p.Subject+" "+release+" "+action+" "+reason)
			return nil
		}})
	_, body := get(t, as(h, auth.RoleApprover), "/ui/releases/m/2")
	for _, want := range []string{
		`<tr data-site="site-1"><th scope="row">site-1</th><td>canary</td><td><span class="badge ok">serving</span>`, // its report, before the batch completes
		`<tr data-site="site-2"><th scope="row">site-2</th><td>fleet</td><td><span class="badge info">pending</span>`,
		`value="approve"`, `value="reject"`, "1m30s", "errorRate", "0.004", "0.05",
		`href="http://temporal:8233/namespaces/default/workflows/release%2Fm%2F2"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("release page as approver lacks %q", want)
		}
	}
	if strings.Contains(body, `value="rollback"`) {
		t.Error("an approver gets the release manager's buttons")
	}
	_, body = get(t, as(h, auth.RoleViewer), "/ui/releases/m/2")
	if strings.Contains(body, "<button type=\"submit\" name=\"action\"") {
		t.Error("a viewer gets control buttons")
	}
	_, body = get(t, as(h, auth.RoleReleaseManager), "/ui/releases/m/2")
	if !strings.Contains(body, `value="rollback"`) || strings.Contains(body, `value="approve"`) {
		t.Error("a release manager's buttons: want rollback, not approve")
	}
	// An ml-engineer may abort their own release only.
	if _, body = get(t, as(h, auth.RoleMLEngineer), "/ui/releases/m/2"); strings.Contains(body, `value="abort"`) {
		t.Error("an ml-engineer may abort a release not theirs")
	}
	rel.mu.Lock()
	rel.status.Owner = "someone@example.com"
	rel.mu.Unlock()
	if _, body = get(t, as(h, auth.RoleMLEngineer), "/ui/releases/m/2"); !strings.Contains(body, `value="abort"`) || strings.Contains(body, `value="rollback"`) {
		t.Error("the owner, an ml-engineer, gets no abort button (or more than it)")
	}
	if code, _ := get(t, as(h, auth.RoleViewer), "/ui/releases/m/9"); code != http.StatusNotFound {
		t.Errorf("an unknown release: %d, want 404", code)
	}
	if len(sent) != 0 {
		t.Errorf("pages sent controls: %v", sent)
	}
}

func TestDriftPageDrawsFeaturesAgainstThresholds(t *testing.T) {
	v := drift.Verdict{ID: "w1", Site: "site-1", Model: "m", Version: "1", WindowEnd: now, Requests: 2000, DataDrift: true,
		Features: []drift.FeatureVerdict{
			{Name: "vibration_rms", Metric: "psi", Value: 0.6, Threshold: 0.2, Breached: true},
			{Name: "temperature", Metric: "psi", Value: 0.01, Threshold: 0.2},
		}}
	var mu sync.Mutex
	verdicts := []drift.Verdict{v}
	h := as(newHandler(t, Config{Monitor: func() (drift.Stats, []drift.Verdict) {
		mu.Lock()
		defer mu.Unlock()
		return drift.Stats{Received: 7}, verdicts
	}}), auth.RoleViewer)
	_, body := get(t, h, "/ui/drift")
	for _, want := range []string{`data-feature="vibration_rms"`, "breached", "drifting", `aria-label="0.6 of threshold 0.2"`, "7 signal messages"} {
		if !strings.Contains(body, want) {
			t.Errorf("drift page lacks %q", want)
		}
	}
	// A bar over its threshold is red and the threshold mark inside it.
	if !regexp.MustCompile(`aria-label="0.6 of threshold 0.2"><rect[^>]*/><rect x="0" y="2" width="200.0" height="10" fill="#b91c1c"/><line x1="66.7"`).MatchString(body) {
		t.Errorf("vibration_rms's bar is not full and red with the threshold at a third: %s", body)
	}
	// The next window adds to the feature's history.
	v.Features = slices.Clone(v.Features)
	v.ID, v.WindowEnd, v.Features[0].Value = "w2", now.Add(time.Minute), 0.7
	mu.Lock()
	verdicts = []drift.Verdict{v}
	mu.Unlock()
	_, body = get(t, h, "/ui/drift")
	if !strings.Contains(body, `aria-label="2 windows, latest 0.7, threshold 0.2"`) {
		t.Errorf("vibration_rms's history has not two windows: %s", body)
	}
}

func TestLiveStreamPushesChanges(t *testing.T) {
	rel := gated()
	h := newHandler(t, Config{Sites: fleetOf(2), Releases: rel, LiveInterval: 10 * time.Millisecond})
	srv := httptest.NewServer(as(h, auth.RoleViewer))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/releases/m/2?live=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev strings.Builder
		for sc.Scan() {
			if sc.Text() == "" && ev.Len() > 0 {
				events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(sc.Text() + "\n")
		}
		close(events)
	}()
	next := func() string {
		for e := range events {
			if strings.HasPrefix(e, "event: page") {
				return e
			}
		}
		t.Fatal("stream ended")
		return ""
	}
	if first := next(); !strings.Contains(first, "awaiting-approval") {
		t.Fatalf("first event: %s", first)
	}
	rel.mu.Lock()
	rel.status.State, rel.status.Gate = modelfleet.StateDeploying, nil
	rel.mu.Unlock()
	if second := next(); !strings.Contains(second, `id="release-state">deploying`) {
		t.Errorf("after the gate passed: %s", second)
	}
	cancel()
	_, _ = io.Copy(io.Discard, resp.Body)
}

func TestStaticAssetsAreEmbedded(t *testing.T) {
	h := newHandler(t, Config{})
	for _, p := range []string{"/ui/static/live.js", "/ui/static/app.css"} {
		if code, body := get(t, h, p); code != http.StatusOK || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", p, code, len(body))
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/login", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(rec.Body.String(), "http://") || strings.Contains(rec.Body.String(), "https://") {
		t.Errorf("the login page refers to another origin: %s", rec.Body.String())
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/releases/m/1?x=1": "/ui/releases/m/1?x=1",
		"//evil.example/ui/":   "/ui/fleet",
		"https://evil/ui/":     "/ui/fleet",
		"/api/sites":           "/ui/fleet",
		"":                     "/ui/fleet",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFleetMarksHealthWindowsAndDrift: a site outside its maintenance
// window and a site whose drift verdict drifted are marked, coloured and
// can be filtered for; the tiles view shows the same sites; a bad filter
// is refused with the reason.
func TestFleetMarksHealthWindowsAndDrift(t *testing.T) {
	fleet := fleetOf(6)
	// now is Saturday 12:00 UTC: a weekday-night window is closed, a
	// daily noon one open.
	fleet[0].Window = &modelfleet.MaintenanceWindow{Schedule: "0 22 * * 1-5", Duration: "2h"}
	fleet[1].Window = &modelfleet.MaintenanceWindow{Schedule: "0 11 * * *", Duration: "2h"}
	monitor := func() (drift.Stats, []drift.Verdict) {
		return drift.Stats{}, []drift.Verdict{
			{Site: "site-3", Model: "m", Version: "2", DataDrift: true},
			{Site: "site-4", Model: "m", Version: "1"},
		}
	}
	h := as(newHandler(t, Config{Sites: fleet, Monitor: monitor}), auth.RoleViewer)
	code, body := get(t, h, "/ui/fleet")
	if code != http.StatusOK {
		t.Fatalf("fleet: %d %s", code, body)
	}
	for _, want := range []string{
		`<tr data-site="site-1" class="h-ok">`, `<span class="badge warn">outside</span> outside window, opens Mon 22:00 UTC`,
		`in window until 13:00 UTC`,
		`<tr data-site="site-3" class="h-drifting">`, `<tr data-site="site-4" class="h-ok">`,
		"1 drifting", "1 outside their maintenance window",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}
	for query, want := range map[string][]string{
		"status=outside-window": {"site-1"},
		"status=drifting":       {"site-3"},
		"status=online":         {"site-1", "site-2", "site-3", "site-4", "site-5", "site-6"},
	} {
		_, body := get(t, h, "/ui/fleet?"+query)
		got := rowsOf(body)
		slices.SortFunc(got, naturalCompare)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", query, got, want)
		}
	}
	_, body = get(t, h, "/ui/fleet?view=tiles&status=drifting")
	if !strings.Contains(body, `<li class="tile h-drifting" data-site="site-3">`) || strings.Contains(body, `data-site="site-1"`) {
		t.Errorf("tiles of drifting sites: %s", body)
	}
	for query, want := range map[string]string{
		"status=sleeping":                   "status filter",
		"view=cards":                        "view",
		"page=-1":                           "page",
		"per=lots":                          "per",
		"model=" + strings.Repeat("m", 300): "model filter",
		"label=" + strings.Repeat("k", 300) + "=": "label filter",
	} {
		code, body := get(t, h, "/ui/fleet?"+query)
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want 400 naming %q", truncate(query, 30), code, want)
		}
	}
}

// FuzzFleetQuery: any query the fleet page gets is parsed or refused,
// and what it accepts is bounded.
func FuzzFleetQuery(f *testing.F) {
	for _, q := range []string{"", "model=m&version=2&label=plant%3Da&status=offline&group=line&per=50&page=3&view=tiles", "per=100000", "status=x", "page=0", "label=a"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		fl, page, err := parseFleetQuery(q)
		if err != nil {
			if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
				t.Fatalf("%q: %v, want an invalid-input error", raw, err)
			}
			return
		}
		if fl.Per < 1 || fl.Per > MaxPageSize || page < 1 || len(fl.Model) > maxFilterLen || len(fl.Label) > maxFilterLen ||
			(fl.Status != "" && !slices.Contains(statuses, fl.Status)) || (fl.View != "rows" && fl.View != "tiles") {
			t.Fatalf("%q accepted as %+v page %d", raw, fl, page)
		}
	})
}

// TestQueuesPagePeeksAndRedrives runs on a real embedded queue: the
// page shows its depth and each dead letter with its reason and the
// start of its body, pages through dead letters, offers re-drive only to
// those who may, and a re-drive puts them back in the queue.
func TestQueuesPagePeeksAndRedrives(t *testing.T) {
	q, err := queue.Open(filepath.Join(t.TempDir(), "signals.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	for i := range peekRows + 5 {
		body := fmt.Sprintf(`{"site":"site-%d","poison":true}`, i)
		if i == 0 {
			body = strings.Repeat("x", bodyPreview+50)
		}
		if err := q.Send(ctx, queue.Message{ID: fmt.Sprintf("msg-%d", i), Body: []byte(body), Properties: map[string]string{"modelfleet-site": fmt.Sprintf("site-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := q.Receive(ctx, peekRows+2)
	if err != nil || len(ds) != peekRows+2 {
		t.Fatalf("receive: %d, %v", len(ds), err)
	}
	for _, d := range ds {
		if err := q.DeadLetter(ctx, d, "SchemaInvalid", "unknown field poison"); err != nil {
			t.Fatal(err)
		}
	}
	audit := func() []auth.AuditRecord {
		return []auth.AuditRecord{
			{At: now, Allowed: true, Who: "ana@example.com", Action: "approve", Object: "release/m/1"},
			{At: now, Who: "eve@example.com", Action: "POST /ui/queues/redrive", Why: "lacks queues.manage"},
			{At: now, Allowed: true, Who: "edge-42", Action: "PUT /api/sites/edge-42/actual", Why: string(auth.SiteSelf)},
			{At: now, Allowed: true, Who: "bob@example.com", Action: "GET /ui/fleet", Why: string(auth.SitesRead)},
		}
	}
	h := newHandler(t, Config{Queue: q, Audit: audit})
	viewer := as(h, auth.RoleViewer)
	code, body := get(t, viewer, "/ui/queues")
	if code != http.StatusOK {
		t.Fatalf("queues: %d %s", code, body)
	}
	for _, want := range []string{
		`<dd id="queue-depth">3</dd>`, `<dd id="dead-letters" class="bad">22</dd>`,
		"SchemaInvalid", "unknown field poison", "modelfleet-site=site-0", strings.Repeat("x", bodyPreview) + "…</pre>",
		`{&#34;site&#34;:&#34;site-1&#34;,&#34;poison&#34;:true}`, `rel="next"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("queues page lacks %q", want)
		}
	}
	if strings.Contains(body, strings.Repeat("x", bodyPreview+1)) {
		t.Error("the page shows more of a body than its preview")
	}
	if strings.Contains(body, "Re-drive") || strings.Contains(body, "Audit:") {
		t.Error("a viewer is offered re-drive or sees the audit")
	}
	// The next page of dead letters starts after the first 20.
	next := regexp.MustCompile(`href="(/ui/queues\?dead_from=\d+)" rel="next"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("no link to the next dead letters")
	}
	_, body = get(t, viewer, strings.ReplaceAll(next[1], "&amp;", "&"))
	if n := strings.Count(body, `<tr data-seq=`); n != 2 {
		t.Errorf("second page of dead letters: %d rows, want 2", n)
	}
	if code, _ := get(t, viewer, "/ui/queues?dead_from=-1"); code != http.StatusBadRequest {
		t.Errorf("dead_from=-1: %d, want 400", code)
	}

	admin := as(h, auth.RoleAdmin)
	// By default: denials and people's changes, not the sites' reports
	// nor page views.
	_, body = get(t, admin, "/ui/queues")
	if !strings.Contains(body, "ana@example.com") || !strings.Contains(body, "eve@example.com") || strings.Contains(body, "edge-42") || strings.Contains(body, "bob@example.com") {
		t.Errorf("an admin's default audit: %s", body)
	}
	if _, body = get(t, admin, "/ui/queues?audit=all"); !strings.Contains(body, "edge-42") || !strings.Contains(body, "bob@example.com") {
		t.Errorf("the whole audit lacks the routine records")
	}
	if code, _ := get(t, admin, "/ui/queues?audit=some"); code != http.StatusBadRequest {
		t.Errorf("audit=some: %d, want 400", code)
	}
	_, body = get(t, admin, "/ui/queues?audit=denied")
	if !strings.Contains(body, "Re-drive 22 dead letters") || !strings.Contains(body, "eve@example.com") || strings.Contains(body, "ana@example.com") {
		t.Errorf("an admin's queues page with denials only: %s", body)
	}
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest("POST", "/ui/queues/redrive", nil))
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "22+messages+re-driven") {
		t.Fatalf("re-drive: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	st, err := q.Stats()
	if err != nil || st.DeadLettered != 0 || st.Active != 25 {
		t.Errorf("after re-drive: %+v, %v; want 0 dead letters, 25 active", st, err)
	}
}

// mutableSites is a directory whose sites the test changes.
type mutableSites struct {
	mu sync.Mutex
	s  sites
}

func (m *mutableSites) List() ([]modelfleet.Site, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.s), nil
}

// TestFleetListingFollowsTheDirectory: the fleet page's shared listing
// and its natural order follow sites joining and leaving, and reports
// changing, once the listing has expired.
func TestFleetListingFollowsTheDirectory(t *testing.T) {
	dir := &mutableSites{s: fleetOf(9)}
	hh := newHandler(t, Config{Sites: dir})
	h := as(hh, auth.RoleViewer)
	_, body := get(t, h, "/ui/fleet?group=none")
	if got := rowsOf(body); len(got) != 9 || got[0] != "site-1" || got[8] != "site-9" {
		t.Fatalf("rows %v", got)
	}
	dir.mu.Lock()
	// The directory lists by ID bytes: site-10 sorts before site-2 there.
	dir.s = append(sites{fleetOf(10)[9]}, dir.s[1:]...)
	dir.s[0].LastSeen = now.Format(time.RFC3339)
	dir.mu.Unlock()
	// Within the listing's lifetime the page shows the listing it has.
	_, body = get(t, h, "/ui/fleet?group=none")
	if got := rowsOf(body); len(got) != 9 || got[0] != "site-1" {
		t.Errorf("rows within the listing's lifetime %v", got)
	}
	hh.fleet.mu.Lock()
	hh.fleet.at = time.Time{} // expired
	hh.fleet.mu.Unlock()
	_, body = get(t, h, "/ui/fleet?group=none")
	got := rowsOf(body)
	want := []string{"site-2", "site-3", "site-4", "site-5", "site-6", "site-7", "site-8", "site-9", "site-10"}
	if !slices.Equal(got, want) {
		t.Errorf("rows after the change %v, want %v", got, want)
	}
	if !strings.Contains(body, `<tr data-site="site-10" class="h-ok">`) {
		t.Errorf("site-10, reported now, is not shown online")
	}
}

// TestReleasePageSitesInPages: a release to 250 sites shows them 100 at
// a time, counts each state over all of them, and filters by state.
func TestReleasePageSitesInPages(t *testing.T) {
	rel := gated()
	rel.status.Sites = nil
	for i := 1; i <= 250; i++ {
		st := modelfleet.SitePending
		if i%25 == 0 {
			st = modelfleet.SiteFailed
		}
		rel.status.Sites = append(rel.status.Sites, modelfleet.SiteStatus{Site: fmt.Sprintf("site-%d", i), Wave: "fleet", State: st})
	}
	h := as(newHandler(t, Config{Sites: sites{}, Releases: rel}), auth.RoleViewer)
	_, body := get(t, h, "/ui/releases/m/2")
	if rows := rowsOf(body); len(rows) != 100 || rows[0] != "site-1" {
		t.Errorf("first page: %d rows from %v", len(rows), rows[:min(1, len(rows))])
	}
	for _, want := range []string{"page 1 of 3 (250 sites)", `<span class="badge bad">failed</span> 10</a>`, `<span class="badge info">pending</span> 240</a>`,
		`href="/ui/releases/m/2?sites_page=2#release-sites" rel="next"`} {
		if !strings.Contains(body, want) {
			t.Errorf("release page lacks %q", want)
		}
	}
	_, body = get(t, h, "/ui/releases/m/2?sites_page=3")
	if rows := rowsOf(body); len(rows) != 50 || rows[49] != "site-250" {
		t.Errorf("last page: %d rows", len(rows))
	}
	_, body = get(t, h, "/ui/releases/m/2?site_state=failed")
	if rows := rowsOf(body); len(rows) != 10 || rows[0] != "site-25" || !strings.Contains(body, "all states") {
		t.Errorf("failed sites: %v", rows)
	}
	for _, q := range []string{"sites_page=0", "sites_page=x", "site_state=" + strings.Repeat("s", 65)} {
		if code, _ := get(t, h, "/ui/releases/m/2?"+q); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", truncate(q, 20), code)
		}
	}
}

// FuzzPageQueries: whatever query a page gets, it answers 200 or a 400
// that says why, never a failure of its own.
func FuzzPageQueries(f *testing.F) {
	for _, q := range []string{"", "sites_page=2&site_state=failed", "dead_from=5&audit=denied", "view=tiles&status=drifting&per=5&page=2", "sites_page=-1", "audit=x"} {
		f.Add(q)
	}
	q, err := queue.Open(filepath.Join(f.TempDir(), "signals.db"), queue.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { q.Close() })
	h, err := New(Config{Sites: fleetOf(30), Releases: gated(), Queue: q, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(h.Close)
	handler := as(h, auth.RoleAdmin)
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.ContainsAny(raw, "# \t\r\n") {
			return // not one query string
		}
		for _, page := range []string{"/ui/fleet", "/ui/releases/m/2", "/ui/queues", "/ui/drift"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			req.URL.Path, req.URL.RawQuery = page, raw
			if req.URL.Query().Get("live") != "" {
				return // the stream, not the page
			}
			handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Fatalf("%s?%s: %d %s", page, raw, rec.Code, rec.Body.String())
			}
		}
	})
}

// TestDriftPageAtManySites: 60 series are shown 25 at a time, the
// drifting ones first; the filter keeps the breached ones only.
func TestDriftPageAtManySites(t *testing.T) {
	var vs []drift.Verdict
	for i := 1; i <= 60; i++ {
		v := drift.Verdict{ID: fmt.Sprint(i), Site: fmt.Sprintf("site-%d", i), Model: "m", Version: "1", WindowEnd: now,
			Features: []drift.FeatureVerdict{{Name: "f", Metric: "psi", Value: 0.1, Threshold: 0.2}}}
		if i%20 == 0 {
			v.DataDrift = true
		}
		vs = append(vs, v)
	}
	h := as(newHandler(t, Config{Monitor: func() (drift.Stats, []drift.Verdict) { return drift.Stats{}, vs }}), auth.RoleViewer)
	seriesRE := regexp.MustCompile(`<section class="series" aria-label="[^"]*" data-site="(site-\d+)">`)
	sitesOf := func(body string) []string {
		var out []string
		for _, m := range seriesRE.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	_, body := get(t, h, "/ui/drift")
	got := sitesOf(body)
	if len(got) != driftPageSize || !slices.Equal(got[:4], []string{"site-20", "site-40", "site-60", "site-1"}) {
		t.Errorf("first page: %d series, starting %v; want 25, drifting first", len(got), got[:min(4, len(got))])
	}
	if !strings.Contains(body, "60 of 60 series") || !strings.Contains(body, "3 drifting") || !strings.Contains(body, "page 1 of 3") {
		t.Errorf("drift summary or pager missing")
	}
	_, body = get(t, h, "/ui/drift?page=3")
	if got := sitesOf(body); len(got) != 10 || got[9] != "site-59" {
		t.Errorf("last page: %v", got)
	}
	_, body = get(t, h, "/ui/drift?state=breached")
	if got := sitesOf(body); !slices.Equal(got, []string{"site-20", "site-40", "site-60"}) {
		t.Errorf("breached only: %v", got)
	}
	_, body = get(t, h, "/ui/drift?site=site-7")
	if got := sitesOf(body); !slices.Equal(got, []string{"site-7"}) {
		t.Errorf("site-7: %v", got)
	}
	if _, body = get(t, h, "/ui/drift?site=nowhere"); !strings.Contains(body, "No series matches.") {
		t.Errorf("a filter keeping nothing does not say so")
	}
	for _, q := range []string{"state=calm", "page=0", "site=" + strings.Repeat("s", 300)} {
		if code, _ := get(t, h, "/ui/drift?"+q); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", truncate(q, 20), code)
		}
	}
}

// TestDriftHistoryForgetsGoneSeries: the history keeps each current
// series' windows and drops a series the monitor no longer reports.
func TestDriftHistoryForgetsGoneSeries(t *testing.T) {
	h := newDriftHistory()
	v := func(site, id string, val float64) drift.Verdict {
		return drift.Verdict{ID: id, Site: site, Model: "m", Version: "1", WindowEnd: now, Features: []drift.FeatureVerdict{{Name: "f", Value: val}}}
	}
	h.record([]drift.Verdict{v("site-1", "a", 1), v("site-2", "b", 2)})
	h.record([]drift.Verdict{v("site-1", "c", 3), v("site-2", "b", 2)}) // site-2's again: no new point
	if got := h.of(v("site-1", "", 0), "f"); len(got) != 2 || got[1].Value != 3 {
		t.Errorf("site-1's history %v, want two windows", got)
	}
	if got := h.of(v("site-2", "", 0), "f"); len(got) != 1 {
		t.Errorf("site-2's history %v, want one window", got)
	}
	h.record([]drift.Verdict{v("site-1", "d", 4)})
	if got := h.of(v("site-2", "", 0), "f"); len(got) != 0 || len(h.seen) != 1 || len(h.points) != 1 {
		t.Errorf("site-2 gone: history %v, %d series, %d features; want none of it kept", got, len(h.seen), len(h.points))
	}
}

// The drift page shows each monitored model's retraining cycles, newest
// first, challenger against champion; a model never retrained has none.
func TestDriftPageShowsRetrainingCycles(t *testing.T) {
	vs := []drift.Verdict{
		{ID: "w1", Site: "site-1", Model: "m", Version: "3", WindowEnd: now},
		{ID: "w2", Site: "site-1", Model: "other", Version: "1", WindowEnd: now},
	}
	var asked []string
	h := as(newHandler(t, Config{
		Monitor: func() (drift.Stats, []drift.Verdict) { return drift.Stats{}, vs },
		Retraining: func(_ context.Context, model string) (*RetrainView, error) {
			asked = append(asked, model)
			if model != "m" {
				return nil, nil
			}
			return &RetrainView{Model: "m", Stage: "idle", Cycles: []RetrainCycleView{
				{Number: 1, OpenedAt: "2026-12-01T10:00:00Z", Why: "data drift at site-1", Result: "rejected", Outcome: "rejected: challenger auc 0.9100 does not beat champion 3's 0.9200",
					Evaluation: &modelfleet.Comparison{Model: "m", Challenger: "run r1", Champion: "3", Metric: "auc", ChallengerValue: 0.91, ChampionValue: 0.92, Rows: 400}},
				{Number: 2, OpenedAt: "2026-12-02T10:00:00Z", Why: "data drift at site-1", Result: "registered", Registered: &modelfleet.ModelRef{Name: "m", Version: "4"},
					Evaluation: &modelfleet.Comparison{Model: "m", Challenger: "run r2", Champion: "3", Metric: "auc", ChallengerValue: 0.95, ChampionValue: 0.92, Margin: 0.01, Rows: 400}},
			}}, nil
		},
	}), auth.RoleViewer)
	_, body := get(t, h, "/ui/drift")
	if !slices.Equal(asked, []string{"m", "other"}) {
		t.Errorf("asked about %v, want each monitored model once", asked)
	}
	for _, want := range []string{`aria-label="Retraining of m"`, "auc 0.95 (run r2) against 0.92 (3)", "→ m:4", "does not beat champion"} {
		if !strings.Contains(body, want) {
			t.Errorf("drift page lacks %q", want)
		}
	}
	if strings.Index(body, `data-cycle="2"`) > strings.Index(body, `data-cycle="1"`) {
		t.Error("cycles are not newest first")
	}
	if strings.Contains(body, `aria-label="Retraining of other"`) {
		t.Error("a model never retrained has a retraining section")
	}
}
