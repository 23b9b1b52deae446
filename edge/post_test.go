package edge

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func (o *recorder) scoredRows() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.scored)
}

// A batch runs once a request fills the backlog: the observer has every
// row of the batch, in order, and the shadow every request.
func TestBacklogRunsWhenFull(t *testing.T) {
	r, o, shadow, shadowScored := shadowedRouter(t, version("2", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}))
	defer r.Close()
	r.post.delay = time.Hour // no timer: only a full backlog runs
	h := r.Handler()
	for i := range postBatch - 1 {
		if rec := do(h, "POST", "/score/m", `{"temp":`+strconv.Itoa(i)+`,"vibration":0,"rpm":0}`); rec.Code != 200 {
			t.Fatalf("score: %d %s", rec.Code, rec.Body)
		}
	}
	if n, s := o.scoredRows(), shadowScored(); n != 0 || s != 0 {
		t.Fatalf("before the backlog is full: observed %d, shadow scored %d, want 0 and 0", n, s)
	}
	if rec := do(h, "POST", "/score/m", `{"temp":`+strconv.Itoa(postBatch-1)+`,"vibration":0,"rpm":0}`); rec.Code != 200 {
		t.Fatalf("score: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, "the batch observed", func() bool { return o.scoredRows() == postBatch })
	for i, row := range o.scored {
		if row[0] != float64(i) {
			t.Errorf("observed row %d = %v, want temp %d: the rows in the order of their requests", i, row, i)
		}
	}
	// Not yet cheap, the shadow went to the pool's workers.
	waitFor(t, "the shadow's scores", func() bool { return shadowScored() == postBatch })
	if a := testutil.ToFloat64(shadow.m.agree); a != postBatch {
		t.Errorf("agreements = %v, want %d", a, postBatch)
	}
}

// Traffic too thin to fill the backlog is still observed and mirrored,
// postDelay after the first request; Close does what is left.
func TestBacklogTimerAndClose(t *testing.T) {
	r, o, shadow, shadowScored := shadowedRouter(t, version("2", []string{"rpm", "temp"}, &fakeScorer{weights: []float64{1, 1}}))
	h := r.Handler()
	if rec := do(h, "POST", "/score/m", goodRow); rec.Code != 200 {
		t.Fatalf("score: %d %s", rec.Code, rec.Body)
	}
	waitFor(t, "the request observed and mirrored", func() bool { return o.scoredRows() == 1 && shadowScored() == 1 })

	r.post.delay = time.Hour
	for range 3 {
		if rec := do(h, "POST", "/score/m", goodRow); rec.Code != 200 {
			t.Fatalf("score: %d %s", rec.Code, rec.Body)
		}
	}
	r.Close()
	if n := o.scoredRows(); n != 4 {
		t.Errorf("observed after Close: %d, want 4", n)
	}
	// The shadow declares other features: it decoded each body itself (the
	// backlog kept them), inline or in the pool; Close discards what is
	// still queued for a worker, so at most what was queued is missing.
	if s, d := shadowScored(), testutil.ToFloat64(shadow.m.dropped); s+int(d) > 4 || s < 1 {
		t.Errorf("shadow scored %d, dropped %v, of 4", s, d)
	}
}

// The request that fills the backlog hands the batch to a goroutine of its
// own: while a shadow of the batch is still scoring inline there, the
// client has its answer and its connection serves the next requests. A
// request filling the backlog again while that batch runs runs its batch
// itself, after its answer.
func TestBacklogFreesTheFillersConnection(t *testing.T) {
	r := NewRouter("site-1", fakeVector, testLogger(t))
	r.shadow = newShadowPool(1, 2*postBatch) // one inline slot; no drops
	r.post.delay = time.Hour                 // only a full backlog runs
	release := make(chan struct{})
	var once sync.Once
	unstick := func() { once.Do(func() { close(release) }) }
	defer r.Close()
	defer unstick()
	shadow := &turnsSlowScorer{Scorer: &fakeScorer{weights: []float64{1, 1, 1}}, release: release} // every call blocks
	err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 100},
		{LoadedModel: version("2", testFeatures, shadow), Shadow: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := r.lookup("m").version("2")
	a.shadowStreak.Store(shadowInlineStreak) // cheap so far: scored inline
	srv := httptest.NewUnstartedServer(r.Handler())
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer unstick() // before Close, which waits for the handlers
	c := srv.Client()
	c.Timeout = 20 * time.Second // only stops a broken test from hanging
	score := func() {
		t.Helper()
		resp, err := c.Post(srv.URL+"/score/m", "application/json", strings.NewReader(goodRow))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(b)) {
			t.Fatalf("answer: %d %q (length %d), %v", resp.StatusCode, b, resp.ContentLength, err)
		}
	}
	for range postBatch {
		score()
	}
	waitFor(t, "the batch's inline score", func() bool { return r.shadow.inline.Load() == 1 && shadow.calls.Load() == 1 })
	// The batch is stuck on its goroutine; the same connection answers a
	// whole batch more, whose last request runs it (to the pool: the
	// inline slot is taken).
	for range postBatch {
		score()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the client's connection was held", n)
	}
	r.post.mu.Lock()
	running := r.post.running
	r.post.mu.Unlock()
	if !running {
		t.Error("the first batch no longer runs, though its shadow score is stuck")
	}
	unstick()
	waitFor(t, "every shadow score", func() bool { return testutil.ToFloat64(a.m.shadowOK) == 2*postBatch })
	if d := testutil.ToFloat64(a.m.dropped); d != 0 {
		t.Errorf("dropped = %v", d)
	}
}

// At most one batch is handed off at a time, and none once the backlog is
// stopped; stop waits for the one that runs.
func TestBacklogHandOff(t *testing.T) {
	release := make(chan struct{})
	var ran atomic.Int32
	b := newBacklog(func(batch []postJob) {
		<-release
		ran.Add(int32(len(batch)))
	})
	if !b.handOff(make([]postJob, 2)) {
		t.Fatal("the first batch was not handed off")
	}
	if b.handOff(make([]postJob, 3)) {
		t.Fatal("a second batch was handed off while the first runs")
	}
	close(release)
	waitFor(t, "the handed-off batch", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return !b.running
	})
	if !b.handOff(make([]postJob, 4)) {
		t.Fatal("a batch was not handed off once the last one had run")
	}
	b.stop() // waits for it
	if n := ran.Load(); n != 6 {
		t.Errorf("ran %d jobs after stop, want 6", n)
	}
	if b.handOff(make([]postJob, 1)) {
		t.Error("a batch was handed off after stop")
	}
}

// shadowedRouter serves model m: version 1 at 100, shadow as its shadow,
// with an observer; shadowScored counts the shadow's scores.
func shadowedRouter(t *testing.T, shadow LoadedModel) (r *Router, o *recorder, a *arm, shadowScored func() int) {
	t.Helper()
	r = NewRouter("site-1", fakeVector, testLogger(t))
	if err := r.Set("m", []WeightedModel{
		{LoadedModel: version("1", testFeatures, &fakeScorer{weights: []float64{1, 1, 1}}), Weight: 100},
		{LoadedModel: shadow, Shadow: true},
	}); err != nil {
		t.Fatal(err)
	}
	o = &recorder{}
	r.SetObserver(o)
	a = r.lookup("m").version(shadow.Model.Version)
	return r, o, a, func() int { return int(testutil.ToFloat64(a.m.shadowOK)) }
}
