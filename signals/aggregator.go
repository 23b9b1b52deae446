package signals

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
)

// DefaultInterval is how long a window lasts unless configured.
const DefaultInterval = 60 * time.Second

// AggregatorOptions configures an Aggregator.
type AggregatorOptions struct {
	Site string
	// Interval is the window length; windows end on multiples of it (wall
	// clock), so all sites' windows line up. Default DefaultInterval.
	Interval time.Duration
	// Emit takes each closed window's message (typically Buffer.Add). It is
	// called from Run and Forget, never from Observe.
	Emit   func(Message) error
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
}

// Aggregator turns the router's per-request observations into one Message
// per model version per window. Observe and ObserveRejected are safe for
// concurrent use and allocate nothing once a version's series exists: the
// series are found through an immutable map behind an atomic pointer, and
// each has its own mutex held for a few dozen increments.
type Aggregator struct {
	opts   AggregatorOptions
	series atomic.Pointer[map[seriesKey]*series]
	mu     sync.Mutex // serialises writers of series and flushes

	emitted, emitErrors atomic.Int64
}

type seriesKey struct{ model, version string }

type series struct {
	model, version string
	mu             sync.Mutex
	layout         *layout
	start          time.Time
	cur            *window // the open window
	total          *window // everything closed so far, for Prometheus
	spare          *window // the window swapped in at the next flush
}

// NewAggregator returns an aggregator with no series yet.
func NewAggregator(opts AggregatorOptions) *Aggregator {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{opts: opts}
	a.series.Store(&map[seriesKey]*series{})
	return a
}

// SetBaseline sets the baseline a model version's features and predictions
// are binned by; names are the model's feature names in row order (what
// Observe's features follow). Call it when the version is loaded, before
// it serves. Changing it closes the version's current window first, since
// counts binned by two baselines cannot share one message.
func (a *Aggregator) SetBaseline(model, version string, names []string, b *Baseline) {
	l := newLayout(b, names)
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.series.Load()
	if s := old[seriesKey{model, version}]; s != nil {
		a.closeLocked(s, a.opts.Now())
	}
	next := maps.Clone(old)
	next[seriesKey{model, version}] = a.newSeries(model, version, l)
	a.series.Store(&next)
}

// Forget closes a version's window and stops tracking it (the version was
// unloaded). Its Prometheus figures go with it.
func (a *Aggregator) Forget(model, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.series.Load()
	s := old[seriesKey{model, version}]
	if s == nil {
		return
	}
	a.closeLocked(s, a.opts.Now())
	next := maps.Clone(old)
	delete(next, seriesKey{model, version})
	a.series.Store(&next)
}

func (a *Aggregator) newSeries(model, version string, l *layout) *series {
	return &series{
		model: model, version: version, layout: l,
		start: windowTime(a.opts.Now()),
		cur:   newWindow(l), total: newWindow(l), spare: newWindow(l),
	}
}

// get returns the series of a version, creating one without a baseline
// (counts and latency only) for a version nobody called SetBaseline for.
func (a *Aggregator) get(model, version string) *series {
	if s := (*a.series.Load())[seriesKey{model, version}]; s != nil {
		return s
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := *a.series.Load()
	if s := old[seriesKey{model, version}]; s != nil {
		return s
	}
	s := a.newSeries(model, version, newLayout(nil, nil))
	next := maps.Clone(old)
	next[seriesKey{model, version}] = s
	a.series.Store(&next)
	return s
}

// Observe records one request a version answered: its feature row (model
// order) and prediction when err is nil, or the failure. Features is only
// read, never kept.
func (a *Aggregator) Observe(model, version string, features []float64, prediction float64, latency time.Duration, err error) {
	s := a.get(model, version)
	lb := latencyBucket(latency)
	code := ""
	if err != nil {
		code = modelfleet.ErrorCode(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w, l := s.cur, s.layout
	w.requests++
	w.latency[lb]++
	w.latencySum += latency.Seconds()
	if err != nil {
		w.errors++
		w.codes[code]++
		return
	}
	w.scored++
	for i, v := range features {
		if i < len(l.rowToHist) {
			if h := l.rowToHist[i]; h >= 0 {
				w.observe(l, h, v)
			}
		}
	}
	if l.pred >= 0 {
		w.observe(l, l.pred, prediction)
	}
}

// ObserveRejected records a request whose body the vectorizer rejected,
// counting per feature what was missing, null or not a number. names are
// the model's feature names. Parsing the body again costs allocations, but
// only on this failure path.
func (a *Aggregator) ObserveRejected(model, version string, names []string, body []byte, latency time.Duration) {
	nulls, typeErrs := classify(names, body)
	s := a.get(model, version)
	lb := latencyBucket(latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	w, l := s.cur, s.layout
	w.requests++
	w.latency[lb]++
	w.latencySum += latency.Seconds()
	w.errors++
	w.rejected++
	w.codes[modelfleet.EINVALID]++
	for i := range names {
		if i >= len(l.rowToHist) || l.rowToHist[i] < 0 || l.names[i] != names[i] {
			continue
		}
		h := l.rowToHist[i]
		if nulls[i] {
			w.nulls[h]++
		}
		if typeErrs[i] {
			w.typeErrors[h]++
		}
	}
}

// Flush closes every version's window at now and returns the messages of
// those that saw requests (an idle window sends nothing).
func (a *Aggregator) Flush(now time.Time) []Message {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Message
	for _, s := range a.sorted() {
		if m, ok := a.close(s, now); ok {
			out = append(out, m)
		}
	}
	return out
}

// closeLocked closes s's window and emits its message; a.mu is held.
func (a *Aggregator) closeLocked(s *series, now time.Time) {
	if m, ok := a.close(s, now); ok {
		a.emit(m)
	}
}

// close swaps s's open window for a fresh one and renders the old one.
// a.mu is held, so no two closes of s race for its spare window.
func (a *Aggregator) close(s *series, now time.Time) (Message, bool) {
	end := windowTime(now)
	s.mu.Lock()
	start, w := s.start, s.cur
	if !end.After(start) {
		s.mu.Unlock()
		return Message{}, false
	}
	s.start = end
	if w.requests == 0 {
		s.mu.Unlock()
		return Message{}, false
	}
	s.cur, s.spare = s.spare, nil
	w.addTo(s.total)
	s.mu.Unlock()
	m := w.message(a.opts.Site, s.model, s.version, s.layout, start, end)
	w.reset()
	s.spare = w
	return m, true
}

func (a *Aggregator) sorted() []*series {
	m := *a.series.Load()
	keys := slices.SortedFunc(maps.Keys(m), func(x, y seriesKey) int {
		if c := strings.Compare(x.model, y.model); c != 0 {
			return c
		}
		return strings.Compare(x.version, y.version)
	})
	out := make([]*series, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func (a *Aggregator) emit(m Message) {
	if a.opts.Emit == nil {
		return
	}
	if err := a.opts.Emit(m); err != nil {
		a.emitErrors.Add(1)
		a.opts.Logger.Error("signal message lost: emit failed", "message_id", m.MessageID, "model", m.Model, "version", m.Version, "err", err)
		return
	}
	a.emitted.Add(1)
}

// Run closes windows on every multiple of Interval until ctx is done, then
// closes the partial window, so a clean shutdown loses nothing.
func (a *Aggregator) Run(ctx context.Context) error {
	for {
		now := a.opts.Now()
		next := now.Truncate(a.opts.Interval).Add(a.opts.Interval)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			a.flushEmit(a.opts.Now())
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-t.C:
			a.flushEmit(next)
		}
	}
}

func (a *Aggregator) flushEmit(now time.Time) {
	for _, m := range a.Flush(now) {
		a.emit(m)
	}
}
