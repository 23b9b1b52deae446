package fleettest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

// testMonitorState checks the drift monitor's series store: conditional
// writes by generation, parts written, kept and deleted, series kept
// apart, and no lost update among concurrent writers.
func testMonitorState(t *testing.T, d *fleet.Directory) {
	ctx := context.Background()
	st := d.MonitorState()
	k := drift.SeriesKey{Site: "a", Model: "b", Version: "1"}
	// Names that share a prefix with k's, joined: they must not meet.
	other := drift.SeriesKey{Site: "a", Model: "b", Version: "10"}
	got, err := st.LoadSeries(ctx, k)
	if err != nil || got.Gen != 0 || got.Head != nil || len(got.Parts) != 0 {
		t.Fatalf("missing series: %+v, %v", got, err)
	}
	save := func(ws ...drift.SeriesWrite) []int {
		t.Helper()
		c, err := st.SaveSeries(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := save(
		drift.SeriesWrite{Key: k, Head: []byte("h1"), Parts: map[int][]byte{-7: []byte("sum"), 0: []byte("s0"), 3: []byte("s3")}},
		drift.SeriesWrite{Key: other, Head: []byte("o1"), Parts: map[int][]byte{0: []byte("o0")}},
	); len(c) != 0 {
		t.Fatalf("new series: conflicts %v", c)
	}
	want := drift.SeriesState{Gen: 1, Head: []byte("h1"), Parts: map[int][]byte{-7: []byte("sum"), 0: []byte("s0"), 3: []byte("s3")}}
	check := func(k drift.SeriesKey, want drift.SeriesState) {
		t.Helper()
		got, err := st.LoadSeries(ctx, k)
		if err != nil || got.Gen != want.Gen || !bytes.Equal(got.Head, want.Head) || fmt.Sprint(got.Parts) != fmt.Sprint(want.Parts) {
			t.Fatalf("series %v = %+v, %v; want %+v", k, got, err, want)
		}
	}
	check(k, want)
	check(other, drift.SeriesState{Gen: 1, Head: []byte("o1"), Parts: map[int][]byte{0: []byte("o0")}})
	// A write computed from an older generation changes nothing; the one
	// beside it in the batch is written.
	if c := save(
		drift.SeriesWrite{Key: other, Prev: 1, Head: []byte("o2"), Parts: map[int][]byte{}},
		drift.SeriesWrite{Key: k, Prev: 0, Head: []byte("stale"), Parts: map[int][]byte{0: []byte("x")}},
	); !slices.Equal(c, []int{1}) {
		t.Fatalf("stale write: conflicts %v, want [1]", c)
	}
	check(k, want)
	check(other, drift.SeriesState{Gen: 2, Head: []byte("o2"), Parts: map[int][]byte{0: []byte("o0")}})
	if c := save(drift.SeriesWrite{Key: k, Prev: 2, Head: []byte("stale")}); !slices.Equal(c, []int{0}) {
		t.Fatalf("write ahead of the stored generation: conflicts %v, want [0]", c)
	}
	// Parts listed are replaced or (nil) deleted; the others stay.
	save(drift.SeriesWrite{Key: k, Prev: 1, Head: []byte("h2"), Parts: map[int][]byte{0: []byte("s0'"), 3: nil, drift.PartSiteRef: []byte("ref")}})
	check(k, drift.SeriesState{Gen: 2, Head: []byte("h2"), Parts: map[int][]byte{drift.PartSiteRef: []byte("ref"), -7: []byte("sum"), 0: []byte("s0'")}})

	// Writers racing on one series, each retrying on conflict: every
	// increment lands once.
	counter := drift.SeriesKey{Site: "c", Model: "m", Version: "1"}
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; {
				cur, err := st.LoadSeries(ctx, counter)
				if err != nil {
					errs <- err
					return
				}
				var n uint64
				if len(cur.Head) == 8 {
					n = binary.BigEndian.Uint64(cur.Head)
				}
				c, err := st.SaveSeries(ctx, []drift.SeriesWrite{{Key: counter, Prev: cur.Gen,
					Head: binary.BigEndian.AppendUint64(nil, n+1), Parts: map[int][]byte{w: []byte{byte(i)}}}})
				if err != nil {
					errs <- err
					return
				}
				if len(c) == 0 {
					i++
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cur, err := st.LoadSeries(ctx, counter)
	if err != nil || cur.Gen != writers*each || binary.BigEndian.Uint64(cur.Head) != writers*each || len(cur.Parts) != writers {
		t.Fatalf("after %d racing increments: gen %d, head %x, %d parts, %v", writers*each, cur.Gen, cur.Head, len(cur.Parts), err)
	}
}

// monitorFixture is a site's signal messages, some drifting, and a
// baseline for them.
type monitorFixture struct {
	cooldown time.Duration // -1: every verdict is reported
	base     *signals.Baseline
	msgs     [][]byte // in window order, two sites interleaved
}

func newMonitorFixture(t *testing.T) *monitorFixture {
	features := []string{"a", "b", "c", "d"}
	rng := rand.New(rand.NewPCG(7, 14))
	row := func(shift float64) []float64 {
		r := make([]float64, len(features))
		for j := range r {
			r[j] = float64(j) + (1+float64(j))*rng.NormFloat64()
		}
		r[2] += shift
		return r
	}
	ds := &inference.Dataset{Features: features}
	for range 3000 {
		ds.X = append(ds.X, row(0))
	}
	base, err := signals.BuildBaseline(ds, 20)
	if err != nil {
		t.Fatal(err)
	}
	fx := &monitorFixture{base: base, cooldown: -1}
	now := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)
	aggs := map[string]*signals.Aggregator{}
	for _, site := range []string{"plant-1", "plant-2"} {
		aggs[site] = signals.NewAggregator(signals.AggregatorOptions{Site: site, Interval: time.Minute, Now: func() time.Time { return now }})
		aggs[site].SetBaseline("m", "1", features, base)
	}
	for i := range 16 {
		for _, site := range []string{"plant-1", "plant-2"} {
			// plant-1's third feature moves in the middle, and comes back.
			shift := 0.0
			if site == "plant-1" && i >= 7 && i < 12 {
				shift = 4
			}
			for range 150 {
				aggs[site].Observe("m", "1", row(shift), 0.5, time.Millisecond, nil)
			}
		}
		now = now.Add(time.Minute)
		for _, site := range []string{"plant-1", "plant-2"} {
			ms := aggs[site].Flush(now)
			if len(ms) != 1 {
				t.Fatalf("%d messages", len(ms))
			}
			b, err := json.Marshal(ms[0])
			if err != nil {
				t.Fatal(err)
			}
			fx.msgs = append(fx.msgs, b)
		}
	}
	return fx
}

// sink records the verdicts it is given.
type sink struct {
	mu  sync.Mutex
	ids []string
}

func (s *sink) Notify(_ context.Context, v drift.Verdict) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, v.ID)
	return nil
}

// distinct is the verdict IDs notified, each once, sorted.
func (s *sink) distinct() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func (fx *monitorFixture) monitor(t *testing.T, st drift.StateStore, sk drift.Sink) *drift.Monitor {
	m, err := drift.NewMonitor(drift.Options{
		Baselines: drift.Baselines{modelfleet.ModelRef{Name: "m", Version: "1"}: fx.base},
		Sink:      sk, State: st, Lookback: 4 * time.Minute, Slots: 4, MinRows: 400, Cooldown: fx.cooldown,
		Reference: drift.ReferenceSite,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (fx *monitorFixture) process(t *testing.T, m *drift.Monitor, msgs [][]byte) {
	t.Helper()
	for _, b := range msgs {
		if err := m.Process(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func verdictsJSON(t *testing.T, m *drift.Monitor) string {
	b, err := json.Marshal(m.Verdicts())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testMonitorRestart stops a monitor mid-window and starts another on the
// same store, which is given the last message again (its completion was
// lost with the first monitor), then the rest: the windows' verdicts are
// those of a monitor that ran throughout, the repeated message counted
// once, every verdict reported.
func testMonitorRestart(t *testing.T, d *fleet.Directory) {
	for _, cooldown := range []time.Duration{-1, 5 * time.Minute} {
		t.Run(fmt.Sprint("cooldown", cooldown), func(t *testing.T) {
			fx := newMonitorFixture(t)
			fx.cooldown = cooldown
			monitorRestart(t, d, fx)
		})
	}
}

func monitorRestart(t *testing.T, d *fleet.Directory, fx *monitorFixture) {
	whole := &sink{}
	u := fx.monitor(t, nil, whole) // in memory, never stopped
	fx.process(t, u, fx.msgs)
	if !slices.ContainsFunc(u.Verdicts(), func(v drift.Verdict) bool { return v.Site == "plant-1" && v.Messages == 4 }) || len(whole.ids) < 2 {
		t.Fatalf("the uninterrupted run: %d verdicts reported, latest %s; the test's premise is wrong", len(whole.ids), verdictsJSON(t, u))
	}
	if fx.cooldown > 0 && len(whole.ids) >= len(fx.msgs)/2 {
		t.Fatalf("the uninterrupted run reported %d verdicts: %v", len(whole.ids), whole.ids)
	}
	for _, cut := range []int{3, 15, 19} {
		t.Run(fmt.Sprint("after", cut), func(t *testing.T) {
			st := restartStore{d.MonitorState(), fmt.Sprint(fx.cooldown, cut)}
			sk := &sink{}
			a := fx.monitor(t, st, sk)
			fx.process(t, a, fx.msgs[:cut])
			b := fx.monitor(t, st, sk)
			fx.process(t, b, fx.msgs[cut-1:])
			if s := b.Stats(); s.Duplicates != 1 || s.Evaluated != int64(len(fx.msgs)-cut) {
				t.Errorf("restarted monitor: %+v; want the repeated message a duplicate and %d evaluated", s, len(fx.msgs)-cut)
			}
			got, want := verdictsJSON(t, b), verdictsJSON(t, u)
			if got != want {
				t.Errorf("after a restart:\n%s\nuninterrupted:\n%s", got, want)
			}
			if got, want := sk.distinct(), whole.distinct(); !slices.Equal(got, want) {
				t.Errorf("verdicts reported %v, uninterrupted %v", got, want)
			}
		})
	}
}

// restartStore keeps each subtest's series apart by prefixing the site,
// so one directory serves every cut.
type restartStore struct {
	drift.StateStore
	ns string
}

func (r restartStore) LoadSeries(ctx context.Context, k drift.SeriesKey) (drift.SeriesState, error) {
	k.Site = r.ns + "-" + k.Site
	return r.StateStore.LoadSeries(ctx, k)
}

func (r restartStore) SaveSeries(ctx context.Context, ws []drift.SeriesWrite) ([]int, error) {
	ws = slices.Clone(ws)
	for i := range ws {
		ws[i].Key.Site = r.ns + "-" + ws[i].Key.Site
	}
	return r.StateStore.SaveSeries(ctx, ws)
}

// testMonitorReplicas runs two monitors on one store side by side, the
// messages shared between them as a queue hands them out: the stored
// windows are those of one monitor that saw every message.
func testMonitorReplicas(t *testing.T, d *fleet.Directory) {
	fx := newMonitorFixture(t)
	whole := &sink{}
	u := fx.monitor(t, nil, whole)
	fx.process(t, u, fx.msgs)

	sk := &sink{}
	st := d.MonitorState()
	replicas := []*drift.Monitor{fx.monitor(t, st, sk), fx.monitor(t, st, sk)}
	// Each window's two messages (one per site) go to the replicas at
	// once, a window at a time, so every series is written by both.
	for i := 0; i+1 < len(fx.msgs); i += 2 {
		var wg sync.WaitGroup
		for j := range 2 {
			wg.Go(func() {
				if err := replicas[(i/2+j)%2].Process(context.Background(), fx.msgs[i+j]); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// Each message counted once, though some were applied again after the
	// other replica wrote their series.
	if n := replicas[0].Stats().Evaluated + replicas[1].Stats().Evaluated; n != int64(len(fx.msgs)) {
		t.Errorf("the replicas evaluated %d messages, want %d", n, len(fx.msgs))
	}
	// A third monitor, started on the store, takes the last window again:
	// duplicates, and the verdicts of the window the store holds.
	last := fx.monitor(t, st, sk)
	fx.process(t, last, fx.msgs[len(fx.msgs)-2:])
	if s := last.Stats(); s.Duplicates != 2 {
		t.Errorf("the last window again: %+v", s)
	}
	// Its verdicts are the stored windows judged anew: take them from a
	// message of the next window, which both runs get.
	next := nextWindow(t, fx)
	fx.process(t, last, next)
	fx.process(t, u, next)
	if got, want := verdictsJSON(t, last), verdictsJSON(t, u); got != want {
		t.Errorf("after two replicas:\n%s\none monitor:\n%s", got, want)
	}
	if got, want := sk.distinct(), whole.distinct(); !slices.Equal(got, want) {
		t.Errorf("verdicts reported %v, by one monitor %v", got, want)
	}
}

// nextWindow is one message per site of the window after the fixture's.
func nextWindow(t *testing.T, fx *monitorFixture) [][]byte {
	var out [][]byte
	for _, b := range fx.msgs[len(fx.msgs)-2:] {
		var m signals.Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m.WindowStart, m.WindowEnd = m.WindowStart.Add(time.Minute), m.WindowEnd.Add(time.Minute)
		m.MessageID = signals.MessageID(m.Site, m.Model, m.Version, m.WindowStart)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// faultyStore fails every failEvery-th write: before writing, or (lost)
// after writing, as when a commit's answer never arrives.
type faultyStore struct {
	drift.StateStore
	mu        sync.Mutex
	n         int
	failEvery int
	lost      bool
}

func (f *faultyStore) SaveSeries(ctx context.Context, ws []drift.SeriesWrite) ([]int, error) {
	f.mu.Lock()
	f.n++
	fail := f.n%f.failEvery == 0
	f.mu.Unlock()
	if !fail {
		return f.StateStore.SaveSeries(ctx, ws)
	}
	if f.lost {
		if _, err := f.StateStore.SaveSeries(ctx, ws); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("connection reset")
}

// testMonitorWriteFaults fails writes to the store, before or after they
// happen: the message whose write failed is not done (its handler returns
// the error) and comes again, and the windows end as those of a monitor
// without faults, each message counted once.
func testMonitorWriteFaults(t *testing.T, d *fleet.Directory) {
	fx := newMonitorFixture(t)
	whole := &sink{}
	u := fx.monitor(t, nil, whole)
	fx.process(t, u, fx.msgs)
	for _, lost := range []bool{false, true} {
		t.Run(fmt.Sprint("lost=", lost), func(t *testing.T) {
			st := &faultyStore{StateStore: restartStore{d.MonitorState(), fmt.Sprint("faults", lost)}, failEvery: 3, lost: lost}
			sk := &sink{}
			m := fx.monitor(t, st, sk)
			failed := 0
			for _, b := range fx.msgs {
				// Redelivered until done, as the queue would.
				for {
					err := m.Process(context.Background(), b)
					if err == nil {
						break
					}
					if failed++; failed > 100 {
						t.Fatal(err)
					}
				}
			}
			if failed == 0 {
				t.Fatal("no write failed: the test's premise is wrong")
			}
			// A monitor started on the store judges as the one without faults.
			next := nextWindow(t, fx)
			after := fx.monitor(t, st.StateStore, sk)
			fx.process(t, after, next)
			ref := fx.monitor(t, nil, &sink{})
			fx.process(t, ref, fx.msgs)
			fx.process(t, ref, next)
			if got, want := verdictsJSON(t, after), verdictsJSON(t, ref); got != want {
				t.Errorf("after %d failed writes:\n%s\nwithout faults:\n%s", failed, got, want)
			}
			// (and the next window's, which only this run had)
			if got, want := sk.distinct(), whole.distinct(); !subset(want, got) || len(got) != len(want)+2 {
				t.Errorf("verdicts reported %v, without faults %v", got, want)
			}
		})
	}
}

// subset says whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
