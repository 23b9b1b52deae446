package drift

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

var bearingFeatures = []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"}

// fixture is the example model's baseline and a site's aggregator, with a
// clock the test moves a minute per window.
type fixture struct {
	t    testing.TB
	ds   *inference.Dataset
	base *signals.Baseline
	agg  *signals.Aggregator
	now  time.Time
}

func newFixture(t testing.TB) *fixture {
	f, err := os.Open("../examples/bearing-failure/validation.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ds, err := inference.ReadCSV(f, bearingFeatures)
	if err != nil {
		t.Fatal(err)
	}
	base, err := signals.BuildBaseline(ds, 20)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{t: t, ds: ds, base: base, now: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
	fx.agg = signals.NewAggregator(signals.AggregatorOptions{Site: "plant-1", Now: func() time.Time { return fx.now }})
	fx.agg.SetBaseline("bearing-failure", "3", bearingFeatures, base)
	return fx
}

// window scores rows of the validation set (shifting temperature by shift)
// and returns the window's message, encoded.
func (fx *fixture) window(rows int, shift float64) []byte {
	return fx.siteWindow(len(fx.ds.X), rows, shift)
}

type recorder struct {
	mu   sync.Mutex
	got  []Verdict
	fail int // fail this many calls first
}

func (r *recorder) Notify(_ context.Context, v Verdict) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("temporal unavailable")
	}
	r.got = append(r.got, v)
	return nil
}

func (fx *fixture) monitor(sink Sink, opts Options) *Monitor {
	opts.Baselines = Baselines{{Name: "bearing-failure", Version: "3"}: fx.base}
	opts.Sink = sink
	m, err := NewMonitor(opts)
	if err != nil {
		fx.t.Fatal(err)
	}
	return m
}

func TestMonitorDetectsDrift(t *testing.T) {
	fx := newFixture(t)
	rec := &recorder{}
	m := fx.monitor(rec, Options{})
	if err := m.Process(context.Background(), fx.window(1000, 0)); err != nil {
		t.Fatal(err)
	}
	v := m.Verdicts()[0]
	if v.Breached() || v.Insufficient || len(v.Features) != 6 || v.Scored != 1000 || len(rec.got) != 0 {
		t.Fatalf("a window of training rows: %+v", v)
	}
	for _, f := range v.Features {
		if f.Metric != NormalizedWasserstein || f.Threshold != 0.1 || f.Value > 0.05 {
			t.Errorf("%s: %s = %v (threshold %v)", f.Name, f.Metric, f.Value, f.Threshold)
		}
	}
	// Bearings running 15 °C hotter: drift on temperature and nothing else.
	if err := m.Process(context.Background(), fx.window(2000, 15)); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 {
		t.Fatalf("%d verdicts reported, want the breach", len(rec.got))
	}
	v = rec.got[0]
	if !v.DataDrift || v.Messages != 2 || !strings.Contains(v.Reason, `feature "temperature_c" normalized_wasserstein_distance`) {
		t.Errorf("verdict %+v", v)
	}
	temp := v.Features[2]
	std := fx.base.Features[2].Std
	// Two thirds of the window moved by 15 °C: about 10/std standard
	// deviations, less what fell beyond the range (counted at its mean).
	if temp.Name != "temperature_c" || !temp.Breached || temp.Value < 0.9*10/std || temp.Value > 1.1*10/std {
		t.Errorf("temperature: %+v (std %v)", temp, std)
	}
	if !temp.QualityBreached || temp.OutOfBoundsRate < 0.01 {
		t.Errorf("hotter than ever in training is out of bounds: %+v", temp)
	}
	for _, f := range v.Features {
		if f.Name != "temperature_c" && (f.Breached || f.QualityBreached) {
			t.Errorf("%s breached: %+v", f.Name, f)
		}
	}
	if v.ID != "drift/plant-1/bearing-failure/3/"+itoa(v.WindowEnd.UnixMilli()) {
		t.Errorf("id %q", v.ID)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestMonitorDedupeAndLate(t *testing.T) {
	fx := newFixture(t)
	m := fx.monitor(nil, Options{Lookback: 5 * time.Minute, Slots: 5})
	first := fx.window(600, 0)
	for range 3 {
		if err := m.Process(context.Background(), first); err != nil {
			t.Fatal(err)
		}
	}
	for range 6 {
		_ = m.Process(context.Background(), fx.window(600, 0))
	}
	// The first window is now older than the lookback: late, not counted.
	if err := m.Process(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	if st.Evaluated != 7 || st.Duplicates != 2 || st.Late != 1 || st.Received != 10 {
		t.Errorf("stats %+v", st)
	}
	if v := m.Verdicts()[0]; v.Messages != 5 || v.Scored != 3000 {
		t.Errorf("the window keeps 5 one-minute slots: %d messages, %d rows", v.Messages, v.Scored)
	}
}

func TestMonitorRejects(t *testing.T) {
	fx := newFixture(t)
	good := fx.window(100, 0)
	var msg signals.Message
	_ = json.Unmarshal(good, &msg)
	other := msg
	other.Model = "pump"
	other.MessageID = signals.MessageID(other.Site, other.Model, other.Version, other.WindowStart)
	wrongDigest := msg
	wrongDigest.Baseline = "sha256:" + strings.Repeat("0", 64)
	short := msg
	short.Features = append([]signals.FeatureHistogram(nil), msg.Features...)
	short.Features[0].Counts = short.Features[0].Counts[1:]
	short.Features[0].Counts[0] += msg.Features[0].Counts[0]
	cases := map[string][]byte{
		signals.ReasonMalformedJSON: []byte(`{"schemaVersion":`),
		signals.ReasonUnknownSchema: []byte(`{"schemaVersion":"modelfleet.signal/v2"}`),
		ReasonUnknownBaseline:       mustJSON(other),
		ReasonBaselineMismatch:      mustJSON(wrongDigest),
		"short histogram":           mustJSON(short),
	}
	m := fx.monitor(nil, Options{})
	for reason, body := range cases {
		err := m.Process(context.Background(), body)
		var pe *queue.PermanentError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v, want a permanent error", reason, err)
			continue
		}
		want := reason
		if reason == "short histogram" {
			want = ReasonBaselineMismatch
		}
		if pe.Reason != want || !strings.Contains(err.Error(), "signal") {
			t.Errorf("%s: reason %q, error %q", reason, pe.Reason, err)
		}
	}
	if st := m.Stats(); st.Rejected != 5 || st.Evaluated != 0 {
		t.Errorf("stats %+v", st)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestMonitorSinkFailure: a verdict the sink did not take leaves the window
// as it was, so the redelivered message is evaluated and reported again.
func TestMonitorSinkFailure(t *testing.T) {
	fx := newFixture(t)
	rec := &recorder{fail: 1}
	m := fx.monitor(rec, Options{})
	body := fx.window(1000, 20)
	err := m.Process(context.Background(), body)
	var pe *queue.PermanentError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if st := m.Stats(); st.Evaluated != 0 {
		t.Fatalf("stats after a failed report: %+v", st)
	}
	if err := m.Process(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 || !rec.got[0].DataDrift || m.Stats().Duplicates != 0 {
		t.Errorf("redelivery: %d verdicts, stats %+v", len(rec.got), m.Stats())
	}
}

func TestMonitorReportsBreachCooldownRecovery(t *testing.T) {
	fx := newFixture(t)
	rec := &recorder{}
	m := fx.monitor(rec, Options{Lookback: 3 * time.Minute, Slots: 3, Cooldown: 2 * time.Minute})
	ctx := context.Background()
	shifts := []float64{20, 20, 20, 20, 0, 0, 0, 0}
	for _, s := range shifts {
		if err := m.Process(ctx, fx.window(1000, s)); err != nil {
			t.Fatal(err)
		}
	}
	// Breach at minute 1, again after each 2-minute cooldown (minutes 3
	// and 5: at 5 the 3-minute window still holds two drifted windows),
	// then the recovery at 7, when the last drifted one has left it.
	var kinds []bool
	var at []int
	for _, v := range rec.got {
		kinds = append(kinds, v.Breached())
		at = append(at, v.WindowEnd.Minute())
	}
	if len(kinds) != 4 || !kinds[0] || !kinds[1] || !kinds[2] || kinds[3] || at[0] != 1 || at[1] != 3 || at[2] != 5 || at[3] != 7 {
		t.Errorf("reported breached=%v at minutes %v, want [true true true false] at [1 3 5 7]", kinds, at)
	}
}

func TestMonitorInsufficientRows(t *testing.T) {
	fx := newFixture(t)
	rec := &recorder{}
	m := fx.monitor(rec, Options{})
	if err := m.Process(context.Background(), fx.window(100, 30)); err != nil {
		t.Fatal(err)
	}
	v := m.Verdicts()[0]
	if !v.Insufficient || v.Breached() || len(rec.got) != 0 || v.Features[2].Value < 1 {
		t.Errorf("100 rows: %+v", v)
	}
}

func TestMonitorCategorical(t *testing.T) {
	ds := &inference.Dataset{Features: []string{"line", "x"}}
	for i := range 1000 {
		ds.X = append(ds.X, []float64{float64(i % 4), float64(i % 10)})
		ds.Y = append(ds.Y, 0)
	}
	base, err := signals.BuildBaseline(ds, 10, signals.WithCategorical("line"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	agg := signals.NewAggregator(signals.AggregatorOptions{Site: "s", Now: func() time.Time { return now }})
	agg.SetBaseline("m", "1", ds.Features, base)
	for i := range 1000 {
		agg.Observe("m", "1", []float64{float64(i % 2), float64(i % 10)}, 0.5, time.Millisecond, nil) // lines 2 and 3 stopped
	}
	msgs := agg.Flush(now.Add(time.Minute))
	m, err := NewMonitor(Options{Baselines: Baselines{{Name: "m", Version: "1"}: base}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Process(context.Background(), mustJSON(msgs[0])); err != nil {
		t.Fatal(err)
	}
	line := m.Verdicts()[0].Features[0]
	// JS distance (base 2) of [.25 .25 .25 .25 0] and [.5 .5 0 0 0]: the
	// same as SciPy's jensenshannon([1, 0], [.5, .5], 2), halves pooled.
	if line.Metric != JensenShannon || !line.Breached || line.Metrics.NormalizedWasserstein != 0 {
		t.Errorf("line: %+v", line)
	}
	near(t, "JS", line.Value, 0.5579230452841438, 1e-12)
	if x := m.Verdicts()[0].Features[1]; x.Breached {
		t.Errorf("x did not drift: %+v", x)
	}
}

// TestMonitorConsume runs the monitor as the cloud does: queue.Consume over
// the embedded queue, where a bad message is dead-lettered with its reason
// and the others are evaluated.
func TestMonitorConsume(t *testing.T) {
	fx := newFixture(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "signals.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	bodies := [][]byte{fx.window(800, 0), []byte(`not json`), []byte(`{"schemaVersion":"modelfleet.signal/v3"}`), fx.window(800, 0)}
	for i, b := range bodies {
		if err := q.Send(ctx, queue.Message{ID: "m" + itoa(int64(i)), Body: b}); err != nil {
			t.Fatal(err)
		}
	}
	m := fx.monitor(nil, Options{})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- queue.Consume(cctx, q, m.Handle, queue.ConsumeOptions{Concurrency: 2, Logger: slog.New(slog.DiscardHandler)})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := q.Stats()
		if st.Active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dead, err := q.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, d := range dead {
		reasons[d.DeadLetterReason] = true
	}
	if len(dead) != 2 || !reasons[signals.ReasonMalformedJSON] || !reasons[signals.ReasonUnknownSchema] {
		t.Errorf("dead-lettered %+v", dead)
	}
	if st := m.Stats(); st.Evaluated != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestThresholds(t *testing.T) {
	if _, err := NewMonitor(Options{Baselines: Baselines{}, Thresholds: Thresholds{Categorical: Rule{Metric: NormalizedWasserstein}}}); err == nil {
		t.Error("wasserstein accepted for categorical features")
	}
	m, err := NewMonitor(Options{Baselines: Baselines{}, Thresholds: Thresholds{Numerical: Rule{Metric: ChiSquared}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := m.opts.Thresholds.Numerical; r.Threshold != 0.05 || !r.Breached(0.01) || r.Breached(0.5) {
		t.Errorf("chi-squared rule %+v: a p-value below the threshold breaches", r)
	}
	if d := DefaultThresholds(); d.Numerical.Threshold != 0.1 || d.Categorical.Metric != JensenShannon || d.OutOfBoundsRate != 0.01 || d.BoundsMargin != 0.05 {
		t.Errorf("defaults %+v", d)
	}
	// Data-quality rates are judged over MinRows rows unless told
	// otherwise; a rule changed alone keeps the default margin.
	if m.opts.Thresholds.MinQualityRows != 1000 || m.opts.Thresholds.BoundsMargin != DefaultBoundsMargin {
		t.Errorf("thresholds %+v", m.opts.Thresholds)
	}
	m, err = NewMonitor(Options{Baselines: Baselines{}, MinRows: 300})
	if err != nil || m.opts.Thresholds.MinQualityRows != 300 {
		t.Errorf("MinRows 300: %+v %v", m.opts.Thresholds, err)
	}
	if _, err := NewMonitor(Options{Baselines: Baselines{}, Thresholds: Thresholds{NullRate: math.NaN()}}); err == nil {
		t.Error("a NaN rate accepted")
	}
}

// TestMonitorChecksTheSender: with SenderProperty, a message reaches the
// windows only if the site its sender's certificate names is the site it
// speaks of.
func TestMonitorChecksTheSender(t *testing.T) {
	fx := newFixture(t)
	m := fx.monitor(nil, Options{SenderProperty: "modelfleet-site"})
	ctx := context.Background()
	d := func(props map[string]string) queue.Delivery {
		return queue.Delivery{Message: queue.Message{ID: "m", Body: fx.window(600, 0), Properties: props}}
	}
	var pe *queue.PermanentError
	if err := m.Handle(ctx, d(nil)); !errors.As(err, &pe) || !strings.Contains(err.Error(), "no modelfleet-site") {
		t.Errorf("no sender: %v", err)
	}
	if err := m.Handle(ctx, d(map[string]string{"modelfleet-site": "plant-2"})); !errors.As(err, &pe) || !strings.Contains(err.Error(), "sent by site plant-2 about site plant-1") {
		t.Errorf("another site: %v", err)
	}
	if st := m.Stats(); st.Evaluated != 0 || st.Rejected != 2 {
		t.Errorf("after two refused messages: %+v", st)
	}
	if err := m.Handle(ctx, d(map[string]string{"modelfleet-site": "plant-1"})); err != nil {
		t.Errorf("its own site: %v", err)
	}
	if st := m.Stats(); st.Evaluated != 1 {
		t.Errorf("the site's own message was not evaluated: %+v", st)
	}
}
