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
	"github.com/modelfleet/modelfleet/rollout"
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
}

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
	Window   string // "", "open", "closed until ..."
	Serving  []servedRow
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
	f := fleetFilter{
		Model: q.Get("model"), Version: q.Get("version"), Label: q.Get("label"),
		Status: q.Get("status"), Group: cmp.Or(q.Get("group"), "plant"),
	}
	f.Per = DefaultPageSize
	if n, err := strconv.Atoi(q.Get("per")); err == nil && n > 0 {
		f.Per = min(n, MaxPageSize)
	}
	page := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		page = n
	}
	d := &fleetData{Filter: f}
	if f.Label != "" && !strings.Contains(f.Label, "=") {
		return "Fleet", d, modelfleet.Errorf(modelfleet.EINVALID, "label filter %q: want key=value", f.Label)
	}
	sites, err := h.cfg.Sites.List()
	if err != nil {
		return "Fleet", d, err
	}
	d.Total = len(sites)
	now := h.cfg.Now()
	models, keys := map[string]bool{}, map[string]bool{}
	var rows []siteRow
	groupOf := map[string]string{}
	counts := map[[2]string]int{}
	for _, s := range sites {
		for _, m := range s.Serving {
			models[m.Name] = true
		}
		for k := range s.Labels {
			keys[k] = true
		}
		row := h.siteRow(s, now)
		if !f.keeps(s, row) {
			continue
		}
		for _, m := range s.Serving {
			counts[[2]string{m.Name, m.Version}]++
		}
		if row.Status != "online" {
			d.Offline++
		}
		groupOf[s.ID] = cmp.Or(s.Labels[f.Group], "(no "+f.Group+")")
		rows = append(rows, row)
	}
	d.Matched = len(rows)
	d.Models = slices.Sorted(maps.Keys(models))
	d.LabelKey = slices.Sorted(maps.Keys(keys))
	for k, n := range counts {
		d.Counts = append(d.Counts, versionCount{Model: k[0], Version: k[1], Sites: n, Colour: colour(k[1])})
	}
	slices.SortFunc(d.Counts, func(a, b versionCount) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), naturalCompare(a.Version, b.Version))
	})
	slices.SortFunc(rows, func(a, b siteRow) int {
		return cmp.Or(naturalCompare(groupOf[a.ID], groupOf[b.ID]), naturalCompare(a.ID, b.ID))
	})
	d.Pages = max(1, (len(rows)+f.Per-1)/f.Per)
	d.Page = min(page, d.Pages)
	lo := (d.Page - 1) * f.Per
	hi := min(lo+f.Per, len(rows))
	for _, row := range rows[lo:hi] {
		g := groupOf[row.ID]
		if n := len(d.Groups); n == 0 || d.Groups[n-1].Name != g {
			d.Groups = append(d.Groups, siteGroup{Name: g})
		}
		d.Groups[len(d.Groups)-1].Sites = append(d.Groups[len(d.Groups)-1].Sites, row)
	}
	link := func(p int) string {
		v := url.Values{}
		for k, val := range map[string]string{"model": f.Model, "version": f.Version, "label": f.Label, "status": f.Status, "group": f.Group} {
			if val != "" {
				v.Set(k, val)
			}
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

func (h *Handler) siteRow(s modelfleet.Site, now time.Time) siteRow {
	row := siteRow{ID: s.ID, Status: "never", LastSeen: s.LastSeen}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		labels = append(labels, k+"="+s.Labels[k])
	}
	row.Labels = strings.Join(labels, " ")
	if t, err := time.Parse(time.RFC3339Nano, s.LastSeen); err == nil {
		row.Status = "online"
		if now.Sub(t) > h.cfg.OfflineAfter {
			row.Status = "offline"
		}
		row.Ago = ago(now.Sub(t))
	}
	if s.Window != nil {
		if w, err := rollout.ParseWindow(*s.Window); err == nil {
			if open, until := w.State(now); open {
				row.Window = "in window until " + until.UTC().Format("15:04 UTC")
			} else {
				row.Window = "outside window, opens " + until.UTC().Format("Mon 15:04 UTC")
			}
		} else {
			row.Window = "window unreadable: " + err.Error()
		}
	}
	for _, m := range s.Serving {
		row.Serving = append(row.Serving, servedRow{Model: m.Name, Version: m.Version, Colour: colour(m.Version)})
	}
	slices.SortFunc(row.Serving, func(a, b servedRow) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), naturalCompare(a.Version, b.Version))
	})
	return row
}

func (f fleetFilter) keeps(s modelfleet.Site, row siteRow) bool {
	if f.Status != "" && row.Status != f.Status {
		return false
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
