package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/internal/pgtest"
	"github.com/modelfleet/modelfleet/signals"
)

// BenchmarkMonitorState is what keeping the drift monitor's windows in the
// store costs: signal messages of 50 features x 20 bins (make
// bench-signals' shape) from 256 sites, twelve windows each, handled by 8
// or 32 handlers at once (the gateway's monitor runs 32 with a store), with
// the windows in memory, in bbolt and in PostgreSQL, and two replicas'
// monitors sharing the messages on one PostgreSQL. ns/signal is the
// handling time per message (wall clock, the handlers side by side),
// B-written/signal the bytes the store was given per message,
// signals/write how many messages one write carried (group commit),
// conflicts/signal how often a series' write was refused because the other
// replica had written it (the messages are then applied again),
// cpu-ns/signal this process's CPU per message (PostgreSQL's not
// included).
func BenchmarkMonitorState(b *testing.B) {
	const features, sites, windows = 50, 256, 12
	rng := rand.New(rand.NewPCG(1, 2))
	ds := &inference.Dataset{}
	for j := range features {
		ds.Features = append(ds.Features, fmt.Sprintf("f%02d", j))
	}
	row := func() []float64 {
		r := make([]float64, features)
		for j := range r {
			r[j] = float64(j) + (1+float64(j%5))*rng.NormFloat64()
		}
		return r
	}
	for range 5000 {
		ds.X = append(ds.X, row())
	}
	base, err := signals.BuildBaseline(ds, 20)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	agg := signals.NewAggregator(signals.AggregatorOptions{Site: "t", Now: func() time.Time { return now }})
	agg.SetBaseline("bench", "1", ds.Features, base)
	var bodies [][]byte // window by window, every site's
	for w := range windows {
		for s := range sites {
			for range 100 {
				agg.Observe("bench", "1", row(), rng.Float64(), time.Millisecond, nil)
			}
			now = now.Add(time.Second)
			m := agg.Flush(now)[0]
			m.Site = fmt.Sprintf("site-%03d", s)
			m.WindowStart = start.Add(time.Duration(w) * time.Minute)
			m.WindowEnd = m.WindowStart.Add(time.Minute)
			m.MessageID = signals.MessageID(m.Site, m.Model, m.Version, m.WindowStart)
			body, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			bodies = append(bodies, body)
		}
	}
	stores := []struct {
		name string
		open func(b *testing.B) drift.StateStore
	}{
		{"memory", func(*testing.B) drift.StateStore { return nil }},
		{"bbolt", func(b *testing.B) drift.StateStore {
			d, err := fleet.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return d.MonitorState()
		}},
		{"postgres", func(b *testing.B) drift.StateStore {
			p := pool(b, pgtest.DSN(b))
			d, err := fleet.OpenPostgres(p, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return d.MonitorState()
		}},
	}
	type run struct {
		store              int // in stores
		handlers, replicas int
	}
	var runs []run
	for st := range stores {
		for _, h := range []int{8, 32} {
			runs = append(runs, run{st, h, 1})
		}
	}
	// Two replicas' monitors on one database, each with half the
	// handlers, taking messages from one queue as SKIP LOCKED hands them
	// out: a site's messages alternate between them.
	runs = append(runs, run{2, 32, 2})
	for _, r := range runs {
		st := stores[r.store]
		name := fmt.Sprintf("%s/handlers=%d", st.name, r.handlers)
		if r.replicas > 1 {
			name = fmt.Sprintf("%s-%dreplicas/handlers=%d", st.name, r.replicas, r.handlers)
		}
		b.Run(name, func(b *testing.B) {
			var writes, written, series, conflicts atomic.Int64
			var handled int
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				store := st.open(b) // every pass starts with no windows
				var monitors []*drift.Monitor
				for range r.replicas {
					m, err := drift.NewMonitor(drift.Options{
						Baselines: drift.Baselines{modelfleet.ModelRef{Name: "bench", Version: "1"}: base},
						State:     store, Lookback: 10 * time.Minute, Slots: 10,
						OnStateWrite: func(n, c, bytes int, _ time.Duration, err error) {
							if err != nil {
								b.Error(err)
							}
							writes.Add(1)
							series.Add(int64(n))
							conflicts.Add(int64(c))
							written.Add(int64(bytes))
						},
					})
					if err != nil {
						b.Fatal(err)
					}
					monitors = append(monitors, m)
				}
				b.StartTimer()
				cpu0 := cpuTime()
				next := make(chan []byte)
				var wg sync.WaitGroup
				for h := range r.handlers {
					m := monitors[h%r.replicas]
					wg.Go(func() {
						for body := range next {
							if err := m.Process(context.Background(), body); err != nil {
								b.Error(err)
							}
						}
					})
				}
				for _, body := range bodies {
					next <- body
				}
				close(next)
				wg.Wait()
				cpu += cpuTime() - cpu0
				handled += len(bodies)
				var got int64
				for _, m := range monitors {
					got += m.Stats().Evaluated
				}
				if got != int64(len(bodies)) {
					b.Fatalf("evaluated %d of %d", got, len(bodies))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(handled), "ns/signal")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(handled), "cpu-ns/signal")
			if writes.Load() > 0 {
				b.ReportMetric(float64(written.Load())/float64(handled), "B-written/signal")
				b.ReportMetric(float64(handled)/float64(writes.Load()), "signals/write")
				b.ReportMetric(float64(conflicts.Load())/float64(handled), "conflicts/signal")
			}
		})
	}
}

// cpuTime is this process's CPU time (PostgreSQL's is not in it): on a
// shared machine the wall clock measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
