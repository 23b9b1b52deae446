package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stuckScorer blocks every Predict until release is closed.
type stuckScorer struct {
	Scorer
	release chan struct{}
}

func (s stuckScorer) Predict(x []float64) (float64, error) {
	<-s.release
	return s.Scorer.Predict(x)
}

func version(v string, features []string, s Scorer) LoadedModel {
	return LoadedModel{Model: modelfleet.ModelRef{Name: "m", Version: v}, Digest: digestOf([]byte(v)), Features: features, Scorer: s}
}

// waitFor polls cond: shadows finish asynchronously. The deadline only
// stops a broken test from hanging; it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestShadowNeverBlocksThePrimary(t *testing.T) {
	r := NewRouter("site-1", fakeVector, testLogger(t))
	r.shadow = newShadowPool(2, 8)
	release := make(chan struct{})
	var once sync.Once
	unstick := func() { once.Do(func() { close(release) }) }
	defer r.Close()
	defer unstick() // before Close, which waits for the workers
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 100},
		{LoadedModel: version("2", testFeatures, stuckScorer{&fakeScorer{weights: []float64{-1, -1, -1}}, release}), Shadow: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := r.Handler()

	// The shadow never answers while these run: if mirroring could wait,
	// they would hang with it.
	const n = 500
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			rec := do(h, "POST", "/score/m", goodRow)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"version":"1"`) || !strings.Contains(rec.Body.String(), `"shadow":false`) {
				t.Errorf("primary answer = %d %s", rec.Code, rec.Body)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("primary requests are stuck behind a stuck shadow")
	}
	a := r.lookup("m").version("2")
	// The last requests' shadow jobs may still be in the backlog (post.go)
	// for up to postDelay.
	waitFor(t, "every request mirrored", func() bool { return testutil.ToFloat64(a.m.dropped) >= n-2-8 }) // 2 workers stuck, 8 queued
	dropped := testutil.ToFloat64(a.m.dropped)
	if dropped != n-2-8 {
		t.Errorf("dropped = %v, want %d", dropped, n-10)
	}

	unstick()
	scored := func() float64 { return testutil.ToFloat64(a.m.shadowOK) + testutil.ToFloat64(a.m.shadowErrors) }
	waitFor(t, "the shadow to drain", func() bool { return scored()+dropped == n })
	ok := testutil.ToFloat64(a.m.shadowOK)
	if ok == 0 || testutil.ToFloat64(a.m.shadowErrors) != 0 {
		t.Errorf("shadow ok = %v errors = %v", ok, testutil.ToFloat64(a.m.shadowErrors))
	}
	// The primary says 1 to goodRow and the shadow, with opposite weights, 0.
	if agree, disagree := testutil.ToFloat64(a.m.agree), testutil.ToFloat64(a.m.disagree); agree != 0 || disagree != ok {
		t.Errorf("agree = %v disagree = %v, want 0 and %v", agree, disagree, ok)
	}
	body := do(h, "GET", "/metrics", "").Body.String()
	for _, want := range []string{
		`modelfleet_edge_shadow_requests_total{model="m",outcome="ok",site="site-1",version="2"}`,
		`modelfleet_edge_shadow_duration_seconds_count{model="m",site="site-1",version="2"}`,
		`modelfleet_edge_shadow_prediction_count{model="m",site="site-1",version="2"}`,
		`modelfleet_edge_shadow_label_agreement_total{model="m",result="disagree",site="site-1",version="2"}`,
		`modelfleet_edge_shadow_dropped_total{model="m",site="site-1",version="2"}`,
		`modelfleet_edge_traffic_weight{model="m",site="site-1",version="1"} 100`,
		`modelfleet_edge_traffic_weight{model="m",site="site-1",version="2"} 0`,
		`modelfleet_edge_score_requests_total{model="m",outcome="ok",site="site-1",version="1"} 500`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(body, `modelfleet_edge_score_requests_total{model="m",outcome="ok",site="site-1",version="2"} 0`) {
		t.Error("mirrored requests are counted as served requests")
	}
}

// A shadow may declare other features than the primary (a new version
// adds one): it decodes the body itself rather than score the primary's row.
func TestShadowWithOtherFeatures(t *testing.T) {
	r := NewRouter("site-1", fakeVector, testLogger(t))
	defer r.Close()
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 100},
		{LoadedModel: version("2", []string{"rpm", "temp"}, &fakeScorer{weights: []float64{1, 1}}), Shadow: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := r.Handler()
	for range 20 {
		if rec := do(h, "POST", "/score/m", goodRow); rec.Code != 200 {
			t.Fatalf("score = %d %s", rec.Code, rec.Body)
		}
	}
	a := r.lookup("m").version("2")
	waitFor(t, "20 shadow answers", func() bool {
		return testutil.ToFloat64(a.m.shadowOK)+testutil.ToFloat64(a.m.shadowErrors) == 20
	})
	if errs := testutil.ToFloat64(a.m.shadowErrors); errs != 0 {
		t.Errorf("shadow errors = %v: it was given the primary's row", errs)
	}
	if agree := testutil.ToFloat64(a.m.agree); agree != 20 {
		t.Errorf("agreements = %v, want 20", agree)
	}
}

// TestUnloadedVersionLosesItsSeries: a version that is no longer loaded
// keeps no series (weight, requests, latency, predictions, shadow figures,
// feedback), so an agent's metrics do not grow with every release it ever
// served; a label for its prediction is judged but not counted, and does
// not bring its series back.
func TestUnloadedVersionLosesItsSeries(t *testing.T) {
	r, h := newTestRouter(t, "k1")
	auth := []string{"Authorization", "Bearer k1"}
	bearing := func(v string) LoadedModel {
		m := version(v, testFeatures, &fakeScorer{weights: []float64{1, 1, 1}})
		m.Model.Name = "bearing-failure"
		return m
	}
	if err := r.Set("bearing-failure", []WeightedModel{{LoadedModel: bearing("1"), Weight: 100}, {LoadedModel: bearing("3"), Shadow: true}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if rec := do(h, "POST", "/score/bearing-failure", goodRow, append(auth, HeaderRequestID, "r"+strconv.Itoa(i))...); rec.Code != 200 {
			t.Fatalf("score: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := do(h, "POST", "/feedback/bearing-failure", `{"requestId":"r0","label":1}`, auth...); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"counted":true`) {
		t.Fatalf("feedback while loaded: %d %s", rec.Code, rec.Body)
	}
	r.Close() // the shadows' backlog is scored
	series := func(version string) string {
		return grepLines(do(h, "GET", "/metrics", "").Body.String(), `version="`+version+`"`)
	}
	for v, kinds := range map[string][]string{
		"1": {"modelfleet_edge_score_requests_total", "modelfleet_edge_score_duration_seconds", "modelfleet_edge_prediction", "modelfleet_edge_traffic_weight", "modelfleet_edge_feedback_total"},
		"3": {"modelfleet_edge_shadow_requests_total", "modelfleet_edge_shadow_duration_seconds", "modelfleet_edge_shadow_prediction", "modelfleet_edge_shadow_label_agreement_total"},
	} {
		got := series(v)
		for _, k := range kinds {
			if !strings.Contains(got, k+"{") && !strings.Contains(got, k+"_bucket{") {
				t.Errorf("version %s while loaded: no %s series in\n%s", v, k, got)
			}
		}
	}

	r.Swap(LoadedModel{Model: modelfleet.ModelRef{Name: "bearing-failure", Version: "2"}, Features: testFeatures, Scorer: &fakeScorer{weights: []float64{1, 1, 1}}})
	if got := series("2"); !strings.Contains(got, `modelfleet_edge_traffic_weight{model="bearing-failure",site="site-1",version="2"} 100`) {
		t.Errorf("the new version's weight:\n%s", got)
	}
	for _, v := range []string{"1", "3"} {
		if got := series(v); got != "" {
			t.Errorf("version %s is unloaded, yet has series:\n%s", v, got)
		}
	}
	rec := do(h, "POST", "/feedback/bearing-failure", `{"requestId":"r1","label":1}`, auth...)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"counted":false`) || !strings.Contains(rec.Body.String(), `"version":"1"`) {
		t.Errorf("feedback for an unloaded version's prediction: %d %s, want 200 judged and not counted", rec.Code, rec.Body)
	}
	if got := series("1"); got != "" {
		t.Errorf("feedback brought an unloaded version's series back:\n%s", got)
	}
	// The model no longer served at all: its remembered predictions are
	// still judged, not counted.
	if err := r.Set("bearing-failure", nil); err != nil {
		t.Fatal(err)
	}
	rec = do(h, "POST", "/feedback/bearing-failure", `{"requestId":"r2","label":1}`, auth...)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"counted":false`) {
		t.Errorf("feedback for a model no longer served: %d %s, want 200 judged and not counted", rec.Code, rec.Body)
	}
	if got := series("2"); got != "" {
		t.Errorf("a model no longer served keeps series:\n%s", got)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestShadowKeepsTheBodyItDecodes: request bodies are read into reused
// buffers, but a shadow declaring other features decodes the body after
// the request is answered, so its body must not be reused meanwhile. The
// shadow is held until every request is answered, the bodies alternate
// between the two labels, and primary and shadow read only "temp": each
// mirrored request agrees only if the shadow decoded its own body.
func TestShadowKeepsTheBodyItDecodes(t *testing.T) {
	r := NewRouter("site-1", fakeVector, testLogger(t))
	const n = 400
	r.shadow = newShadowPool(2, 2*n)
	release := make(chan struct{})
	var once sync.Once
	unstick := func() { once.Do(func() { close(release) }) }
	defer r.Close()
	defer unstick()
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 0, 0}}), Weight: 100},
		{LoadedModel: version("2", []string{"rpm", "temp"}, stuckScorer{&fakeScorer{weights: []float64{0, 1}}, release}), Shadow: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := r.Handler()
	for i := range n {
		temp := "5"
		if i%2 == 1 {
			temp = "-5"
		}
		if rec := do(h, "POST", "/score/m", `{"temp":`+temp+`,"vibration":1,"rpm":2}`); rec.Code != 200 {
			t.Fatalf("score = %d %s", rec.Code, rec.Body)
		}
	}
	unstick()
	a := r.lookup("m").version("2")
	waitFor(t, "the shadow's answers", func() bool {
		return testutil.ToFloat64(a.m.shadowOK)+testutil.ToFloat64(a.m.shadowErrors) == n
	})
	if agree, disagree := testutil.ToFloat64(a.m.agree), testutil.ToFloat64(a.m.disagree); agree != n || disagree != 0 {
		t.Errorf("agreements %v, disagreements %v, want %d and 0: the shadow decoded another request's body", agree, disagree, n)
	}
}

// turnsSlowScorer answers its first fast calls at once and blocks every
// later one until release is closed, then takes slow (default: twice
// shadowInlineBudget).
type turnsSlowScorer struct {
	Scorer
	fast    int32
	slow    time.Duration
	calls   atomic.Int32
	release chan struct{}
}

func (s *turnsSlowScorer) Predict(x []float64) (float64, error) {
	if s.calls.Add(1) > s.fast {
		<-s.release
		slow := s.slow
		if slow == 0 {
			slow = 2 * shadowInlineBudget
		}
		time.Sleep(slow) // slow however soon it is released
	}
	return s.Scorer.Predict(x)
}

// A shadow that has been cheap is scored inline, after the primary's answer
// is sent: a client has its answer even while the shadow is still scoring
// inline (here on the backlog's timer: post.go). While that batch holds the
// only inline slot, the next one goes to the pool; and a slow score sends
// the shadow back to the pool.
func TestShadowScoredInlineAfterTheAnswerIsSent(t *testing.T) {
	r := NewRouter("site-1", fakeVector, testLogger(t))
	r.shadow = newShadowPool(1, 8) // one worker: one inline slot
	// A cheap score's budget far above what the fake scorer takes, even
	// on a machine so busy that a goroutine waits milliseconds for a core
	// (with the real 200 µs, one such wait cut the streak short).
	r.shadow.inlineBudget = 50 * time.Millisecond
	release := make(chan struct{})
	var once sync.Once
	unstick := func() { once.Do(func() { close(release) }) }
	defer r.Close()
	defer unstick()
	shadow := &turnsSlowScorer{Scorer: &fakeScorer{weights: []float64{1, 1, 1}}, fast: shadowInlineStreak + 2, slow: 2 * r.shadow.inlineBudget, release: release}
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 100},
		{LoadedModel: version("2", testFeatures, shadow), Shadow: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	post := func(c *http.Client) {
		t.Helper()
		resp, err := c.Post(srv.URL+"/score/m", "application/json", strings.NewReader(goodRow))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.TransferEncoding != nil || resp.ContentLength != int64(len(b)) {
			t.Fatalf("answer: %d %q (transfer encoding %v, length %d), %v", resp.StatusCode, b, resp.TransferEncoding, resp.ContentLength, err)
		}
	}
	a := r.lookup("m").version("2")
	scored := func() int { return int(testutil.ToFloat64(a.m.shadowOK)) }
	c := srv.Client()
	for i := range shadowInlineStreak {
		post(c)
		waitFor(t, "the pool's shadow score", func() bool { return scored() == i+1 })
	}
	if got := a.shadowStreak.Load(); got != shadowInlineStreak {
		t.Fatalf("streak after %d cheap scores = %d", shadowInlineStreak, got)
	}
	post(c)
	post(c)
	waitFor(t, "two inline scores", func() bool { return scored() == shadowInlineStreak+2 })
	// A score is counted before its inline slot is given back: the next
	// batch must find the slot free to take it.
	waitFor(t, "the inline slot given back", func() bool { return r.shadow.inline.Load() == 0 })
	// The next shadow score blocks: the client has its answer anyway, and
	// the batch's goroutine holds the inline slot.
	post(c)
	waitFor(t, "the inline slot taken", func() bool { return r.shadow.inline.Load() == 1 })
	// The same connection is busy; another one's request finds the slot
	// taken and its shadow goes to the pool (whose worker blocks too).
	other := &http.Client{Transport: &http.Transport{}}
	defer other.CloseIdleConnections()
	post(other)
	waitFor(t, "the shadow's fourth call", func() bool { return shadow.calls.Load() == shadowInlineStreak+4 })
	if n := r.shadow.inline.Load(); n != 1 {
		t.Errorf("inline scores in progress = %d, want 1", n)
	}
	unstick()
	waitFor(t, "every shadow score", func() bool { return scored() == shadowInlineStreak+4 })
	waitFor(t, "the inline slot freed", func() bool { return r.shadow.inline.Load() == 0 })
	if got := a.shadowStreak.Load(); got != 0 {
		t.Errorf("streak after slow scores = %d, want 0: a slow shadow goes back to the pool", got)
	}
	if d := testutil.ToFloat64(a.m.dropped); d != 0 {
		t.Errorf("dropped = %v", d)
	}
}
