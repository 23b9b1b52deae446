package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// The control plane judges a bake window as the difference of two reports:
// every figure must be cumulative, latency must come in the bins it sums,
// and the epoch must say which run of the counters the figures belong to.
func TestStatsReportCumulativeCountersWithTheirEpoch(t *testing.T) {
	art := fakeArtifact(0, 1, 1, 1)
	dir := t.TempDir()
	a := openAgent(t, dir)
	mustDeploy(t, a, deployReq("bearing-failure", "1", art), art)
	h := a.Handler()
	score := func(ok, bad int) {
		for range ok {
			if rec := do(h, "POST", "/score/bearing-failure", goodRow); rec.Code != 200 {
				t.Fatalf("score: %d %s", rec.Code, rec.Body)
			}
		}
		for range bad {
			if rec := do(h, "POST", "/score/bearing-failure", `{"temp":"hot"}`); rec.Code != 400 {
				t.Fatalf("bad score: %d %s", rec.Code, rec.Body)
			}
		}
	}
	score(7, 3)
	first := a.Stats("bearing-failure")
	if len(first) != 1 {
		t.Fatalf("stats = %+v, want one version", first)
	}
	v := first[0]
	if v.Requests != 10 || v.Errors != 3 {
		t.Errorf("requests %d errors %d, want 10 and 3", v.Requests, v.Errors)
	}
	if got, want := len(v.Latency), len(modelfleet.LatencyBuckets)+1; got != want {
		t.Fatalf("latency bins = %d, want %d (LatencyBuckets and an overflow bin)", got, want)
	}
	if n := sum(v.Latency); n != 10 {
		t.Errorf("latency histogram counts %d requests, want 10", n)
	}
	if n := sum(v.Predictions); n != 7 {
		t.Errorf("prediction histogram counts %d, want the 7 scored", n)
	}
	if v.Epoch == 0 {
		t.Error("no epoch: the control plane could not tell a restart from a quiet window")
	}
	score(5, 1)
	second := a.Stats("bearing-failure")[0]
	if second.Requests != 16 || second.Errors != 4 || sum(second.Latency) != 16 || second.Epoch != v.Epoch {
		t.Errorf("after more traffic: requests %d errors %d latency %d epoch %d, want 16, 4, 16 and the same epoch %d",
			second.Requests, second.Errors, sum(second.Latency), second.Epoch, v.Epoch)
	}
	// A restarted agent counts from zero under a new epoch.
	a.Close()
	b := openAgent(t, dir)
	defer b.Close()
	after := b.Stats("bearing-failure")
	if len(after) != 1 || after[0].Requests != 0 || after[0].Epoch == v.Epoch {
		t.Errorf("after a restart: %+v, want zero requests under an epoch other than %d", after, v.Epoch)
	}
}

// Stats reads the router's score and feedback figures and nothing else of
// its registry: a site reports after every apply and every heartbeat, and
// the registry also holds the process collector (which reads /proc at
// every gather) and whatever the binary registered. /metrics still serves
// all of it.
func TestStatsGatherOnlyTheRoutersFigures(t *testing.T) {
	art := fakeArtifact(0, 1, 1, 1)
	a := openAgent(t, t.TempDir())
	defer a.Close()
	mustDeploy(t, a, deployReq("bearing-failure", "1", art), art)
	other := &countingCollector{desc: prometheus.NewDesc("test_other_figure", "A collector a binary registered.", nil, nil)}
	a.Router().Registry().MustRegister(other)
	h := a.Handler()
	if rec := do(h, "POST", "/score/bearing-failure", goodRow, HeaderRequestID, "r-1"); rec.Code != 200 {
		t.Fatalf("score: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/feedback/bearing-failure", `{"requestId":"r-1","label":1}`); rec.Code != 200 {
		t.Fatalf("feedback: %d %s", rec.Code, rec.Body)
	}
	st := a.Stats("bearing-failure")
	if len(st) != 1 || st[0].Requests != 1 || sum(st[0].Latency) != 1 || sum(st[0].Predictions) != 1 || st[0].Labelled != 1 || st[0].Correct != 1 {
		t.Fatalf("stats = %+v, want one request, its latency and prediction, one correct label", st)
	}
	if n := other.n.Load(); n != 0 {
		t.Errorf("Stats ran another collector of the router's registry %d times, want 0", n)
	}
	metrics := do(h, "GET", "/metrics", "").Body.String()
	for _, want := range []string{"test_other_figure 1", "process_open_fds", "go_goroutines", "modelfleet_edge_score_requests_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// countingCollector counts how often it is collected.
type countingCollector struct {
	desc *prometheus.Desc
	n    atomic.Int64
}

func (c *countingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *countingCollector) Collect(ch chan<- prometheus.Metric) {
	c.n.Add(1)
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// A rollback restores the versions the last change unloaded: from memory,
// without reading, hashing and parsing their files again. Only the last
// change's are kept.
func TestRollbackReusesTheVersionsTheLastChangeUnloaded(t *testing.T) {
	var loads atomic.Int32
	counting := func(format string, data []byte) (Scorer, error) {
		loads.Add(1)
		return fakeLoad(format, data)
	}
	a, err := Open(t.TempDir(), Config{SiteID: "site-1", Loader: counting, Vectorizer: fakeVector, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	arts := map[string][]byte{"1": fakeArtifact(0, 1, 1, 1), "2": fakeArtifact(1, 1, 1, 1), "3": fakeArtifact(2, 1, 1, 1)}
	fetch := func(v modelfleet.DesiredVersion) FetchFunc { return (&fetcher{data: arts[v.Version]}).fetch }
	apply := func(version string, wantLoads int32) {
		t.Helper()
		dv := modelfleet.DesiredVersion{Version: version, Digest: digestOf(arts[version]), Format: modelfleet.FormatLightGBM,
			ArtifactURL: "https://example.invalid/m/" + version, Features: testFeatures, Weight: 100}
		if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{dv}, fetch); err != nil {
			t.Fatalf("apply %s: %v", version, err)
		}
		if got := loads.Load(); got != wantLoads {
			t.Errorf("after applying %s: %d loads, want %d", version, got, wantLoads)
		}
		var resp scoreResponse
		rec := do(a.Handler(), "POST", "/score/m", goodRow)
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != 200 || resp.Version != version {
			t.Errorf("after applying %s: %d %s", version, rec.Code, rec.Body)
		}
	}
	apply("1", 1)
	apply("2", 2)
	apply("1", 2) // rollback: version 1 from memory
	apply("2", 2) // and forward again: version 2 was what the rollback unloaded
	apply("3", 3)
	apply("1", 4) // version 1 was unloaded two changes ago: read from disk
}

// Applying the split a site serves already, as state.json records it,
// installs nothing: the desired state a rollback gives a site whose apply of
// the release's version failed is what it serves. A changed split installs.
func TestApplyOfTheServedSplitInstallsNothing(t *testing.T) {
	a := openAgent(t, t.TempDir())
	defer a.Close()
	arts := map[string][]byte{"1": fakeArtifact(0, 1, 1, 1), "2": fakeArtifact(1, 1, 1, 1), "3": fakeArtifact(2, 1, 1, 1)}
	var fetches atomic.Int32
	fetch := func(v modelfleet.DesiredVersion) FetchFunc {
		return func(ctx context.Context, w io.Writer) error {
			fetches.Add(1)
			if v.Version == "2" {
				return errors.New("registry refuses version 2")
			}
			_, err := w.Write(arts[v.Version])
			return err
		}
	}
	dv := func(version string, weight int) modelfleet.DesiredVersion {
		return modelfleet.DesiredVersion{Version: version, Digest: digestOf(arts[version]), Format: modelfleet.FormatLightGBM,
			ArtifactURL: "https://example.invalid/m/" + version, Features: testFeatures, Weight: weight}
	}
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{dv("1", 100)}, fetch); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{dv("2", 100)}, fetch); err == nil {
		t.Fatal("version 2 applied without its artifact")
	}
	// Install touches the artifact it finds on disk (pruning goes by
	// modification time): an old time stays old unless Install runs.
	p := a.store.Path(modelfleet.ModelRef{Name: "m", Version: "1"}, digestOf(arts["1"]))
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	before := fetches.Load()
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{dv("1", 100)}, fetch); err != nil {
		t.Fatalf("restoring what is served: %v", err)
	}
	if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(old) || fetches.Load() != before {
		t.Errorf("the served split applied again: artifact modified %v (%v), %d fetches: want it untouched, none", fi.ModTime(), err, fetches.Load()-before)
	}
	if got := a.Traffic("m"); !same(got, map[string]int{"1": 100}) {
		t.Errorf("traffic %v, want 1:100", got)
	}
	// A changed split installs its versions, those on disk included.
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{dv("1", 90), dv("3", 10)}, fetch); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.ModTime().Equal(old) || fetches.Load() != before+1 {
		t.Errorf("a changed split: version 1's artifact modified %v (%v), %d fetches: want it touched, version 3 fetched", fi.ModTime(), err, fetches.Load()-before)
	}
}

// With release keys, the served split comes again with another statement
// for the same artifact (signed anew): that is installed, so the statement
// the next start verifies is the one the desired state carries.
func TestApplyOfTheServedSplitKeepsANewStatement(t *testing.T) {
	s := newSigner(t)
	a := openTrusting(t, t.TempDir(), s.trust)
	art := fakeArtifact(0, 1, 1, 1)
	arts := map[string][]byte{"1": art}
	first := s.version(t, "m", "1", art, 100)
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{first}, fetchAll(arts)); err != nil {
		t.Fatal(err)
	}
	p := a.store.Path(modelfleet.ModelRef{Name: "m", Version: "1"}, digestOf(art))
	again := first
	time.Sleep(time.Millisecond) // another SignedAt, so other bytes
	again.Statement = s.version(t, "m", "1", art, 100).Statement
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{again}, fetchAll(arts)); err != nil {
		t.Fatal(err)
	}
	if got, err := readMeta(p); err != nil || !reflect.DeepEqual(got.Statement, again.Statement) {
		t.Errorf("statement kept beside the artifact (%v) is not the new one", err)
	}
}

// A site's report after every apply and heartbeat reads Stats.
func BenchmarkStats(b *testing.B) {
	art := fakeArtifact(0, 1, 1, 1)
	a, err := Open(b.TempDir(), Config{SiteID: "site-1", Loader: fakeLoad, Vectorizer: fakeVector})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	req := deployReq("bearing-failure", "1", art)
	f := &fetcher{data: art}
	if _, err := a.Deploy(context.Background(), req, f.fetch); err != nil {
		b.Fatal(err)
	}
	do(a.Handler(), "POST", "/score/bearing-failure", goodRow)
	b.ReportAllocs()
	for b.Loop() {
		if st := a.Stats("bearing-failure"); len(st) != 1 || st[0].Requests != 1 {
			b.Fatalf("stats = %+v", st)
		}
	}
}

// A downloaded artifact's metadata and statement go in with it (their
// renames synced with its own): after an apply its version directory holds
// exactly the three files, each what the site reads back, and no temp file.
func TestInstallWritesTheFilesBesideTheArtifact(t *testing.T) {
	s := newSigner(t)
	a := openTrusting(t, t.TempDir(), s.trust)
	art := fakeArtifact(0, 1, 1, 1)
	v := s.version(t, "m", "1", art, 100)
	if err := a.Apply(context.Background(), "m", []modelfleet.DesiredVersion{v}, fetchAll(map[string][]byte{"1": art})); err != nil {
		t.Fatal(err)
	}
	p := a.store.Path(modelfleet.ModelRef{Name: "m", Version: "1"}, digestOf(art))
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{filepath.Base(metaPath(p)), filepath.Base(p)}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("version directory holds %v, want %v", names, want)
	}
	if got, err := readMeta(p); err != nil || !reflect.DeepEqual(got.Statement, v.Statement) {
		t.Errorf("metadata's statement: %v, want the statement the desired state carried", err)
	}
	req, err := a.store.installed(modelfleet.ModelRef{Name: "m", Version: "1"})
	if err != nil || req.Digest != v.Digest || req.Format != v.Format || !slices.Equal(req.Features, v.Features) {
		t.Errorf("metadata read back: %+v, %v; want the version's digest, format and features", req, err)
	}
}
