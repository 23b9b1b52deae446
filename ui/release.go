package ui

import (
	"net/http"
	"net/url"
	"slices"
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
	// says so before its batch completes.
	sites, err := h.cfg.Sites.List()
	if err != nil {
		return title, d, err
	}
	byID := make(map[string]modelfleet.Site, len(sites))
	for _, s := range sites {
		byID[s.ID] = s
	}
	d.Status = st.WithReports(byID)
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
