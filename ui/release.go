package ui

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
)

type releasesData struct {
	Releases []releaseRow
}

type releaseRow struct {
	modelfleet.ReleaseSummary
	Link     string // the dashboard's page (model version releases)
	Temporal string
}

func (h *Handler) releasesData(r *http.Request) (string, any, error) {
	list, err := h.cfg.Releases.ListReleases(r.Context(), r.URL.Query().Get("model"), 100)
	d := &releasesData{}
	for _, s := range list {
		row := releaseRow{ReleaseSummary: s, Temporal: h.temporalLink(s.Workflow)}
		if s.Workload == nil {
			row.Link = Prefix + "releases/" + url.PathEscape(s.Model.Name) + "/" + url.PathEscape(s.Model.Version)
		}
		d.Releases = append(d.Releases, row)
	}
	return "Releases", d, err
}

type releaseData struct {
	ID       string
	Status   modelfleet.ReleaseStatus
	Waves    []waveRow
	Temporal string
	Action   string // where the control form posts
	// What the person may do now.
	CanApprove, CanControl bool
	// CanAbortOwn: an ml-engineer's own release.
	CanAbortOwn bool
	Running     bool
	Serving     int // sites that report serving the version
	// The sites table, a page at a time (thousands of sites), optionally
	// of one state: SiteStates counts each state over every site.
	Sites            []modelfleet.SiteStatus
	SiteState        string
	SiteStates       []stateCount
	SitePage, Pages  int
	PrevURL, NextURL string
	AllSitesURL      string
	MatchedSites     int
}

type stateCount struct {
	State string
	Sites int
	URL   string
}

type waveRow struct {
	modelfleet.WaveStatus
	Bake     string // countdown, "" when not baking
	Window   string
	Criteria []modelfleet.CriterionResult // the latest analysis
	Verdict  string
}

func (h *Handler) releaseData(r *http.Request) (string, any, error) {
	ref := modelfleet.ModelRef{Name: r.PathValue("model"), Version: r.PathValue("version")}
	d := &releaseData{ID: modelfleet.ReleaseWorkflowID(ref)}
	title := "Release " + ref.Name + ":" + ref.Version
	if err := ref.Validate(); err != nil {
		return title, d, err
	}
	d.Temporal = h.temporalLink(d.ID)
	d.Action = Prefix + "releases/" + url.PathEscape(ref.Name) + "/" + url.PathEscape(ref.Version) + "/control"
	st, err := h.cfg.Releases.ReleaseStatus(r.Context(), d.ID)
	if err != nil {
		return title, d, err
	}
	// Each site's state as it reports it: a site serving the new version
	// says so before its batch completes. (The listing the fleet pages
	// share: a release page open at 10,000 sites lists them once a
	// second at most, whoever watches.)
	sites, _, err := h.list()
	if err != nil {
		return title, d, err
	}
	byID := make(map[string]modelfleet.Site, len(sites))
	for _, s := range sites {
		byID[s.ID] = s
	}
	d.Status = st.WithReports(byID)
	if err := d.pageSites(r.URL.Query()); err != nil {
		return title, d, err
	}
	for _, ss := range st.Sites {
		for _, m := range byID[ss.Site].Serving {
			if m.ModelRef == ref {
				d.Serving++
			}
		}
	}
	now := h.cfg.Now()
	for _, w := range st.Waves {
		row := waveRow{WaveStatus: w}
		if t, err := time.Parse(time.RFC3339Nano, w.BakeUntil); err == nil && t.After(now) {
			row.Bake = countdown(t.Sub(now))
		}
		if t, err := time.Parse(time.RFC3339Nano, w.WindowUntil); err == nil && t.After(now) {
			row.Window = countdown(t.Sub(now))
		}
		if n := len(w.Analyses); n > 0 {
			row.Criteria, row.Verdict = w.Analyses[n-1].Criteria, w.Analyses[n-1].Verdict
		}
		d.Waves = append(d.Waves, row)
	}
	d.Running = !slices.Contains([]string{modelfleet.StateSucceeded, modelfleet.StateFailed, modelfleet.StateAborted, modelfleet.StateRolledBack}, st.State)
	p := auth.From(r.Context())
	d.CanApprove = d.Running && st.Gate != nil && len(p.Has(auth.ReleasesApprove)) > 0
	d.CanControl = d.Running && len(p.Has(auth.ReleasesControl)) > 0
	d.CanAbortOwn = d.Running && !d.CanControl && st.Owner != "" && st.Owner == p.Subject && len(p.Has(auth.ReleasesAbortOwn)) > 0
	return title, d, nil
}

// control sends a gate decision or a release manager's control, signed
// for the signed-in person by the same path as POST /api/controls.
func (h *Handler) control(w http.ResponseWriter, r *http.Request) {
	ref := modelfleet.ModelRef{Name: r.PathValue("model"), Version: r.PathValue("version")}
	page := Prefix + "releases/" + url.PathEscape(ref.Name) + "/" + url.PathEscape(ref.Version)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	action, reason := r.PostFormValue("action"), strings.TrimSpace(r.PostFormValue("reason"))
	p := auth.From(r.Context())
	err := ref.Validate()
	switch {
	case err != nil:
	case !slices.Contains(modelfleet.Signals, action):
		err = modelfleet.Errorf(modelfleet.EINVALID, "%q is not a release control", action)
	case reason == "":
		err = modelfleet.Errorf(modelfleet.EINVALID, "give a reason: the release records it with who decided")
	case h.cfg.Control == nil || p == nil:
		err = modelfleet.Errorf(modelfleet.EFORBIDDEN, "controls need a signed-in person")
	default:
		err = h.cfg.Control(r.Context(), p, modelfleet.ReleaseWorkflowID(ref), action, reason)
	}
	if err != nil {
		title, data, derr := h.releaseData(r)
		pg := h.newPage(r, "release", title, data)
		pg.Live = true
		pg.Error, pg.Code = action+" refused: "+modelfleet.ErrorMessage(err), modelfleet.ErrorCode(err)
		if derr != nil {
			pg.Error += "; " + modelfleet.ErrorMessage(derr)
		}
		h.render(w, statusOf(err), "release", pg)
		return
	}
	h.cfg.Logger.Info("ui: control sent", "who", p.Subject, "action", action, "release", modelfleet.ReleaseWorkflowID(ref))
	http.Redirect(w, r, page+"?flash="+url.QueryEscape(action+" sent as "+p.Subject), http.StatusSeeOther)
}

// pageSites fills the sites table's page from the query: site_state
// (one state, or all) and sites_page.
func (d *releaseData) pageSites(q url.Values) error {
	d.SiteState = q.Get("site_state")
	if len(d.SiteState) > 64 {
		return modelfleet.Errorf(modelfleet.EINVALID, "site_state: %d bytes, at most 64", len(d.SiteState))
	}
	page := 1
	if v := q.Get("sites_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return modelfleet.Errorf(modelfleet.EINVALID, "sites_page %q: want a whole number from 1", truncate(v, 40))
		}
		page = n
	}
	link := func(state string, p int) string {
		v := url.Values{}
		if state != "" {
			v.Set("site_state", state)
		}
		if p > 1 {
			v.Set("sites_page", strconv.Itoa(p))
		}
		u := strings.TrimSuffix(d.Action, "/control")
		if len(v) > 0 {
			u += "?" + v.Encode()
		}
		return u + "#release-sites"
	}
	counts := map[string]int{}
	var kept []modelfleet.SiteStatus
	for _, s := range d.Status.Sites {
		counts[s.State]++
		if d.SiteState == "" || s.State == d.SiteState {
			kept = append(kept, s)
		}
	}
	for _, st := range slices.Sorted(maps.Keys(counts)) {
		d.SiteStates = append(d.SiteStates, stateCount{State: st, Sites: counts[st], URL: link(st, 1)})
	}
	if d.SiteState != "" {
		d.AllSitesURL = link("", 1)
	}
	d.MatchedSites = len(kept)
	d.Pages = max(1, (len(kept)+DefaultPageSize-1)/DefaultPageSize)
	d.SitePage = min(page, d.Pages)
	lo := (d.SitePage - 1) * DefaultPageSize
	d.Sites = kept[lo:min(lo+DefaultPageSize, len(kept))]
	if d.SitePage > 1 {
		d.PrevURL = link(d.SiteState, d.SitePage-1)
	}
	if d.SitePage < d.Pages {
		d.NextURL = link(d.SiteState, d.SitePage+1)
	}
	return nil
}

func (h *Handler) temporalLink(workflowID string) string {
	if h.cfg.TemporalUI == "" || workflowID == "" {
		return ""
	}
	return strings.TrimSuffix(h.cfg.TemporalUI, "/") + "/namespaces/" + url.PathEscape(h.cfg.Namespace) + "/workflows/" + url.PathEscape(workflowID)
}

func countdown(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return d.String()
}
