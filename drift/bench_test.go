package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/signals"
)

// BenchmarkProcessBatch decodes and evaluates batches of 32 signal messages
// of 50 features x 20 bins from 64 sites, the shape of make bench-signals;
// ns/signal is the figure to compare.
func BenchmarkProcessBatch(b *testing.B) {
	const features, sites, perBatch, batches = 50, 64, 32, 64
	rng := rand.New(rand.NewPCG(1, 2))
	ds := &inference.Dataset{}
	for j := range features {
		ds.Features = append(ds.Features, fmt.Sprintf("f%02d", j))
	}
	row := func(shift float64) []float64 {
		r := make([]float64, features)
		for j := range r {
			r[j] = float64(j) + (1+float64(j%5))*(rng.NormFloat64()+shift)
		}
		return r
	}
	for range 5000 {
		ds.X, ds.Y = append(ds.X, row(0)), append(ds.Y, 0)
	}
	base, err := signals.BuildBaseline(ds, 20)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	agg := signals.NewAggregator(signals.AggregatorOptions{Site: "t", Now: func() time.Time { return now }})
	var bodies [][]byte
	for i := range batches {
		var raw []json.RawMessage
		for k := range perBatch {
			agg.SetBaseline("bench", "1", ds.Features, base)
			shift := 0.0
			if k%4 == 3 {
				shift = 0.5
			}
			for range 200 {
				agg.Observe("bench", "1", row(shift), rng.Float64(), time.Millisecond, nil)
			}
			now = now.Add(time.Minute)
			m := agg.Flush(now)[0]
			n := i*perBatch + k
			m.Site = fmt.Sprintf("site-%03d", n%sites)
			m.WindowStart = start.Add(time.Duration(n/sites) * time.Minute)
			m.WindowEnd = m.WindowStart.Add(time.Minute)
			m.MessageID = signals.MessageID(m.Site, m.Model, m.Version, m.WindowStart)
			body, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			raw = append(raw, body)
		}
		body, err := json.Marshal(struct {
			SchemaVersion string            `json:"schemaVersion"`
			Messages      []json.RawMessage `json:"messages"`
		}{signals.BatchSchemaVersion, raw})
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	cpu0 := cpuTime()
	for b.Loop() {
		// A fresh monitor per pass, so that every message is evaluated
		// rather than dropped as a duplicate.
		m, err := NewMonitor(Options{Baselines: Baselines{modelfleet.ModelRef{Name: "bench", Version: "1"}: base}})
		if err != nil {
			b.Fatal(err)
		}
		for _, body := range bodies {
			if err := m.Process(ctx, body); err != nil {
				b.Fatal(err)
			}
		}
		if got := m.Stats().Evaluated; got != batches*perBatch {
			b.Fatalf("evaluated %d, want %d", got, batches*perBatch)
		}
		n += batches * perBatch
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/signal")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/signal")
}

// cpuTime is the process's CPU time: on a shared machine the wall clock
// measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
