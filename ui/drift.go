package ui

import (
	"cmp"
	"net/http"
	"slices"
	"sync"
	"time"

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

// record adds the verdicts not seen yet.
func (h *driftHistory) record(vs []drift.Verdict) {
	h.mu.Lock()
	defer h.mu.Unlock()
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

func (h *driftHistory) of(v drift.Verdict, feature string) []point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.points[seriesKey(v)+"\x00"+feature])
}

type driftData struct {
	Enabled bool
	Stats   drift.Stats
	Series  []driftSeries
}

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
	d := &driftData{}
	if h.cfg.Monitor == nil {
		return "Drift", d, nil
	}
	d.Enabled = true
	var vs []drift.Verdict
	d.Stats, vs = h.cfg.Monitor()
	h.history.record(vs)
	site, model := r.URL.Query().Get("site"), r.URL.Query().Get("model")
	for _, v := range vs {
		if (site != "" && v.Site != site) || (model != "" && v.Model != model) {
			continue
		}
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
	slices.SortFunc(d.Series, func(a, b driftSeries) int {
		return cmp.Or(naturalCompare(a.Site, b.Site), cmp.Compare(a.Model, b.Model), naturalCompare(a.Version, b.Version))
	})
	return "Drift", d, nil
}
