package ui

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
)

// historyLen is how many windows of each feature the drift page keeps.
const historyLen = 48

// driftHistory keeps each feature's drift metric over the windows the
// monitor evaluated (it holds only the latest verdict of a series).
type driftHistory struct {
	mu     sync.Mutex
	seen   map[string]string // series -> last verdict ID recorded
	points map[string][]point
}

type point struct {
	At    time.Time
	Value float64
}

func newDriftHistory() *driftHistory {
	return &driftHistory{seen: map[string]string{}, points: map[string][]point{}}
}

func seriesKey(v drift.Verdict) string { return v.Site + "\x00" + v.Model + "\x00" + v.Version }

// record adds the verdicts not seen yet, and forgets the series the
// monitor no longer reports (a site gone, a version replaced), so the
// history holds the current fleet's only.
func (h *driftHistory) record(vs []drift.Verdict) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) > len(vs) {
		current := make(map[string]bool, len(vs))
		for _, v := range vs {
			current[seriesKey(v)] = true
		}
		for k := range h.seen {
			if !current[k] {
				delete(h.seen, k)
			}
		}
		for fk := range h.points {
			if k, _, ok := cutLast(fk); ok && !current[k] {
				delete(h.points, fk)
			}
		}
	}
	for _, v := range vs {
		k := seriesKey(v)
		if h.seen[k] == v.ID {
			continue
		}
		h.seen[k] = v.ID
		feats := v.Features
		if v.Prediction != nil {
			feats = append(slices.Clone(feats), *v.Prediction)
		}
		for _, f := range feats {
			fk := k + "\x00" + f.Name
			ps := append(h.points[fk], point{At: v.WindowEnd, Value: f.Value})
			if len(ps) > historyLen {
				ps = ps[len(ps)-historyLen:]
			}
			h.points[fk] = ps
		}
	}
}

// cutLast splits a feature's key into its series key and the feature.
func cutLast(fk string) (series, feature string, ok bool) {
	i := strings.LastIndexByte(fk, 0)
	if i < 0 {
		return "", "", false
	}
	return fk[:i], fk[i+1:], true
}

func (h *driftHistory) of(v drift.Verdict, feature string) []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.points[seriesKey(v)+"\x00"+feature])
}

type driftData struct {
	Enabled bool
	Stats   drift.Stats
	Series  []driftSeries // this page's
	// The filter: site, model, and State "" (every series) or "breached"
	// (drifted or a data-quality breach).
	Site, Model, State string
	// Series counts: every one the monitor judges, those the filter
	// keeps, and of those the drifting.
	Total, Matched, Drifting int
	Page, Pages              int
	PrevURL, NextURL         string
	// Retraining is each monitored model's retraining, newest cycles first.
	Retraining []RetrainView
}

// driftPageSize is how many series (site, model, version) a drift page
// shows: each is a table of its features with two charts.
const driftPageSize = 25

type driftSeries struct {
	drift.Verdict
	Features []featureRow
}

type featureRow struct {
	drift.FeatureVerdict
	Bar   bar
	Spark spark
}

func (h *Handler) driftData(r *http.Request) (string, any, error) {
	q := r.URL.Query()
	d := &driftData{Site: q.Get("site"), Model: q.Get("model"), State: q.Get("state")}
	for name, v := range map[string]string{"site": d.Site, "model": d.Model} {
		if len(v) > maxFilterLen {
			return "Drift", d, modelfleet.Errorf(modelfleet.EINVALID, "%s filter: %d bytes, at most %d", name, len(v), maxFilterLen)
		}
	}
	if d.State != "" && d.State != "breached" {
		return "Drift", d, modelfleet.Errorf(modelfleet.EINVALID, "state %q: want breached, or nothing for every series", truncate(d.State, 40))
	}
	page := 1
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "Drift", d, modelfleet.Errorf(modelfleet.EINVALID, "page %q: want a whole number from 1", truncate(v, 40))
		}
		page = n
	}
	if h.cfg.Monitor == nil {
		return "Drift", d, nil
	}
	d.Enabled = true
	var vs []drift.Verdict
	d.Stats, vs = h.cfg.Monitor()
	h.history.record(vs)
	d.Total = len(vs)
	models := make([]string, 0, len(vs))
	for _, v := range vs {
		models = append(models, v.Model)
	}
	d.Retraining = h.retraining(r.Context(), models)
	var kept []drift.Verdict
	for _, v := range vs {
		if (d.Site != "" && v.Site != d.Site) || (d.Model != "" && v.Model != d.Model) || (d.State != "" && !v.Breached()) {
			continue
		}
		kept = append(kept, v)
		if v.Drifted() {
			d.Drifting++
		}
	}
	// Drifting series first, then data-quality breaches: what an operator
	// looks for at a thousand sites; then by site, model and version.
	rank := func(v *drift.Verdict) int {
		switch {
		case v.Drifted():
			return 0
		case v.QualityBreached:
			return 1
		}
		return 2
	}
	slices.SortFunc(kept, func(a, b drift.Verdict) int {
		return cmp.Or(cmp.Compare(rank(&a), rank(&b)), naturalCompare(a.Site, b.Site), cmp.Compare(a.Model, b.Model), naturalCompare(a.Version, b.Version))
	})
	d.Matched = len(kept)
	d.Pages = max(1, (len(kept)+driftPageSize-1)/driftPageSize)
	d.Page = min(page, d.Pages)
	lo := (d.Page - 1) * driftPageSize
	for _, v := range kept[lo:min(lo+driftPageSize, len(kept))] {
		s := driftSeries{Verdict: v}
		feats := v.Features
		if v.Prediction != nil {
			feats = append(slices.Clone(feats), *v.Prediction)
		}
		for _, f := range feats {
			s.Features = append(s.Features, featureRow{FeatureVerdict: f, Bar: newBar(f.Value, f.Threshold), Spark: newSpark(h.history.of(v, f.Name), f.Threshold)})
		}
		d.Series = append(d.Series, s)
	}
	link := func(p int) string {
		v := url.Values{}
		for k, val := range map[string]string{"site": d.Site, "model": d.Model, "state": d.State} {
			if val != "" {
				v.Set(k, val)
			}
		}
		v.Set("page", strconv.Itoa(p))
		return Prefix + "drift?" + v.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = link(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.NextURL = link(d.Page + 1)
	}
	return "Drift", d, nil
}
