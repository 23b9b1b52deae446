package ui

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Paging of the fleet page.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

type fleetData struct {
	Filter   fleetFilter
	Groups   []siteGroup
	Counts   []versionCount // per model and version, over the filtered sites
	Total    int            // sites in the directory
	Matched  int            // sites the filter keeps
	Offline  int            // of Matched
	Outside  int            // of Matched: outside their maintenance window
	Drifting int            // of Matched: a model's latest verdict drifted
	Statuses []string       // the status filter's choices
	Page     int
	Pages    int
	PrevURL  string
	NextURL  string
	Models   []string // every model served, for the filter
	LabelKey []string // every label key, for grouping
}

type fleetFilter struct {
	Model, Version, Label, Status, Group string
	Per                                  int
	// View is "rows" (a table per group) or "tiles" (a coloured tile per
	// site, for a control-room screen).
	View string
}

// The fleet page's status filter: a site's reporting state, or the
// marks the page puts on it.
const (
	StatusOnline        = "online"
	StatusOffline       = "offline"
	StatusNever         = "never"
	StatusOutsideWindow = "outside-window"
	StatusDrifting      = "drifting"
)

var statuses = []string{StatusOnline, StatusOffline, StatusNever, StatusOutsideWindow, StatusDrifting}

// maxFilterLen bounds each filter value: longer than any name the
// directory accepts.
const maxFilterLen = 256

type siteGroup struct {
	Name  string
	Sites []siteRow
}

type siteRow struct {
	ID       string
	Labels   string
	Status   string // online, offline, never (seen)
	LastSeen string
	Ago      string
	Window   string // "", "in window until ...", "outside window, opens ..."
	// Outside: the site is outside its maintenance window (releases wait).
	Outside bool
	// Drifting names the models whose latest drift verdict at the site
	// drifted.
	Drifting []string
	// Health is what the row is coloured by: ok, drifting, offline or
	// never (reported).
	Health  string
	Serving []servedRow
}

type servedRow struct {
	Model, Version string
	Colour         int // a palette index per version, the same on every row
}

type versionCount struct {
	Model, Version string
	Sites          int
	Colour         int
}

func (h *Handler) fleetData(r *http.Request) (string, any, error) {
	q := r.URL.Query()
	f, page, err := parseFleetQuery(q)
	d := &fleetData{Filter: f, Statuses: statuses}
	if err != nil {
		return "Fleet", d, err
	}
	sites, order, err := h.list()
	if err != nil {
		return "Fleet", d, err
	}
	d.Total = len(sites)
	now := h.cfg.Now()
	drifting := h.driftingSites()
	models, keys := map[string]bool{}, map[string]bool{}
	counts := map[modelfleet.ModelRef]int{}
	// One light pass over the fleet, in natural ID order: what the filter
	// and the summary need. Full rows are built for the page's sites only.
	states := make([]siteState, len(sites))
	groups := map[string][]int{}
	noGroup := "(no " + f.Group + ")"
	for _, i := range order {
		s := &sites[i]
		for _, m := range s.Serving {
			models[m.Name] = true
		}
		for k := range s.Labels {
			keys[k] = true
		}
		st := h.siteState(s, now, drifting[s.ID])
		states[i] = st
		if !f.keeps(s, st) {
			continue
		}
		for _, m := range s.Serving {
			counts[m.ModelRef]++
		}
		if st.Status != StatusOnline {
			d.Offline++
		}
		if st.Outside {
			d.Outside++
		}
		if len(st.Drifting) > 0 {
			d.Drifting++
		}
		g := cmp.Or(s.Labels[f.Group], noGroup)
		groups[g] = append(groups[g], i)
		d.Matched++
	}
	d.Models = slices.Sorted(maps.Keys(models))
	d.LabelKey = slices.Sorted(maps.Keys(keys))
	for k, n := range counts {
		d.Counts = append(d.Counts, versionCount{Model: k.Name, Version: k.Version, Sites: n, Colour: colour(k.Version)})
	}
	slices.SortFunc(d.Counts, func(a, b versionCount) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), naturalCompare(a.Version, b.Version))
	})
	d.Pages = max(1, (d.Matched+f.Per-1)/f.Per)
	d.Page = min(page, d.Pages)
	lo := (d.Page - 1) * f.Per
	hi := min(lo+f.Per, d.Matched)
	// The groups in natural order, each's sites in natural ID order: the
	// page is the [lo, hi) slice of that sequence.
	at := 0
	for _, g := range slices.SortedFunc(maps.Keys(groups), naturalCompare) {
		idx := groups[g]
		from, to := max(lo-at, 0), min(hi-at, len(idx))
		at += len(idx)
		if from >= to {
			continue
		}
		sg := siteGroup{Name: g}
		for _, i := range idx[from:to] {
			sg.Sites = append(sg.Sites, h.siteRow(sites[i], states[i]))
		}
		d.Groups = append(d.Groups, sg)
	}
	link := func(p int) string {
		v := url.Values{}
		for k, val := range map[string]string{"model": f.Model, "version": f.Version, "label": f.Label, "status": f.Status, "group": f.Group, "view": f.View} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if f.View == "rows" {
			v.Del("view")
		}
		if f.Per != DefaultPageSize {
			v.Set("per", strconv.Itoa(f.Per))
		}
		v.Set("page", strconv.Itoa(p))
		return Prefix + "fleet?" + v.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = link(d.Page + 1)
	}
	return "Fleet", d, nil
}

// parseFleetQuery reads the fleet page's query: every value bounded, a
// label filter key=value, a status one of statuses, paging clamped.
func parseFleetQuery(q url.Values) (f fleetFilter, page int, err error) {
	f = fleetFilter{
		Model: q.Get("model"), Version: q.Get("version"), Label: q.Get("label"),
		Status: q.Get("status"), Group: cmp.Or(q.Get("group"), "plant"), View: cmp.Or(q.Get("view"), "rows"),
		Per: DefaultPageSize,
	}
	page = 1
	for name, v := range map[string]string{"model": f.Model, "version": f.Version, "label": f.Label, "group": f.Group} {
		if len(v) > maxFilterLen {
			return f, page, modelfleet.Errorf(modelfleet.EINVALID, "%s filter: %d bytes, at most %d", name, len(v), maxFilterLen)
		}
	}
	if f.Label != "" && !strings.Contains(f.Label, "=") {
		return f, page, modelfleet.Errorf(modelfleet.EINVALID, "label filter %q: want key=value", f.Label)
	}
	if f.Status != "" && !slices.Contains(statuses, f.Status) {
		return f, page, modelfleet.Errorf(modelfleet.EINVALID, "status filter %q: want one of %s", truncate(f.Status, 40), strings.Join(statuses, ", "))
	}
	if f.View != "rows" && f.View != "tiles" {
		return f, page, modelfleet.Errorf(modelfleet.EINVALID, "view %q: want rows or tiles", truncate(f.View, 40))
	}
	for name, dst := range map[string]*int{"per": &f.Per, "page": &page} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return f, 1, modelfleet.Errorf(modelfleet.EINVALID, "%s %q: want a whole number from 1", name, truncate(v, 40))
		}
		*dst = n
	}
	f.Per = min(f.Per, MaxPageSize)
	return f, page, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// driftingSites maps each site to the models whose latest verdict there
// drifted (none without a monitor).
func (h *Handler) driftingSites() map[string][]string {
	if h.cfg.Monitor == nil {
		return nil
	}
	_, vs := h.cfg.Monitor()
	out := map[string][]string{}
	for _, v := range vs {
		if v.Drifted() && !slices.Contains(out[v.Site], v.Model) {
			out[v.Site] = append(out[v.Site], v.Model)
		}
	}
	return out
}

// siteState is what the filter and the summary need of a site.
type siteState struct {
	Status   string        // online, offline, never
	Since    time.Duration // since the site was last seen
	Window   string
	Outside  bool
	Drifting []string
}

func (h *Handler) siteState(s *modelfleet.Site, now time.Time, drifting []string) siteState {
	st := siteState{Status: StatusNever, Drifting: drifting}
	if t, err := time.Parse(time.RFC3339Nano, s.LastSeen); err == nil {
		st.Status = StatusOnline
		if now.Sub(t) > h.cfg.OfflineAfter {
			st.Status = StatusOffline
		}
		st.Since = now.Sub(t)
	}
	if s.Window != nil {
		if w, err := h.window(*s.Window); err == nil {
			if open, until := w.State(now); open {
				st.Window = "in window until " + until.UTC().Format("15:04 UTC")
			} else {
				st.Window, st.Outside = "outside window, opens "+until.UTC().Format("Mon 15:04 UTC"), true
			}
		} else {
			st.Window = "window unreadable: " + err.Error()
		}
	}
	return st
}

// siteRow is a site's full row on the page.
func (h *Handler) siteRow(s modelfleet.Site, st siteState) siteRow {
	row := siteRow{ID: s.ID, Status: st.Status, LastSeen: s.LastSeen, Window: st.Window, Outside: st.Outside, Drifting: st.Drifting}
	if st.Status != StatusNever {
		row.Ago = ago(st.Since)
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		labels = append(labels, k+"="+s.Labels[k])
	}
	row.Labels = strings.Join(labels, " ")
	for _, m := range s.Serving {
		row.Serving = append(row.Serving, servedRow{Model: m.Name, Version: m.Version, Colour: colour(m.Version)})
	}
	slices.SortFunc(row.Serving, func(a, b servedRow) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), naturalCompare(a.Version, b.Version))
	})
	row.Health = "ok"
	switch {
	case row.Status != StatusOnline:
		row.Health = row.Status
	case len(row.Drifting) > 0:
		row.Health = StatusDrifting
	}
	return row
}

func (f fleetFilter) keeps(s *modelfleet.Site, row siteState) bool {
	switch f.Status {
	case "":
	case StatusOutsideWindow:
		if !row.Outside {
			return false
		}
	case StatusDrifting:
		if len(row.Drifting) == 0 {
			return false
		}
	default:
		if row.Status != f.Status {
			return false
		}
	}
	if f.Label != "" {
		k, v, _ := strings.Cut(f.Label, "=")
		if s.Labels[k] != v {
			return false
		}
	}
	if f.Model == "" && f.Version == "" {
		return true
	}
	for _, m := range s.Serving {
		if (f.Model == "" || m.Name == f.Model) && (f.Version == "" || m.Version == f.Version) {
			return true
		}
	}
	return false
}

// colour picks one of the palette's eight colours for a version.
func colour(version string) int {
	h := uint32(2166136261)
	for i := 0; i < len(version); i++ {
		h = (h ^ uint32(version[i])) * 16777619
	}
	return int(h % 8)
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// naturalCompare orders "site-2" before "site-10".
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), cmp.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
