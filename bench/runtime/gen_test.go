package main

import (
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// TestFormatsAgree: the generator's three files of the same trees load in
// the edge runtime and predict what the ensemble does on held-out rows, so
// a broken writer fails here rather than in the benchmark.
func TestFormatsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 0))
	a, err := write(ensemble(rng, 20, 6))
	if err != nil {
		t.Fatal(err)
	}
	_, worst, err := a.agree(rows(rng, 500))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest difference from the ensemble: %v", worst)
}

// TestLine: the final line carries every format's figures and the worst
// p99 ratio over the formats that were measured (NA where none was).
func TestLine(t *testing.T) {
	nan := math.NaN()
	res := map[string]*figures{
		"baseline": {ns: 100, p50: nan, p99: nan, floorP99: nan, p99Rat: nan, pairedRat: nan},
		"lightgbm": {ns: 110, batchNs: 3000, allocs: 0, p50: 0.3, p99: 2.4, floorP99: 2, p99Rat: 1.2, pairedRat: 1.25},
		"xgboost":  {ns: 90, batchNs: 2800, allocs: 0, p50: 0.3, p99: 3, floorP99: 2, p99Rat: 1.5, pairedRat: 1.1},
		"onnx":     {ns: 200, batchNs: 6000, allocs: 12, p50: nan, p99: nan, floorP99: nan, p99Rat: nan, pairedRat: nan},
	}
	got := parseLine(line(config{trees: 300, depth: 6}, res))
	for k, want := range map[string]string{"bench": "runtime", "baseline_ns": "100", "lightgbm_ratio": "1.10", "xgboost_p99_ratio": "1.50",
		"onnx_allocs": "12.0", "onnx_p99_ms": "NA", "worst_p99_ratio": "1.50",
		"lightgbm_paired_p99_ratio": "1.25", "onnx_paired_p99_ratio": "NA", "worst_paired_p99_ratio": "1.25"} {
		if got[k] != want {
			t.Errorf("%s=%q, want %q", k, got[k], want)
		}
	}
	for _, r := range res {
		r.p99Rat, r.pairedRat = nan, nan
	}
	if got := parseLine(line(config{}, res)); got["worst_p99_ratio"] != "NA" || got["worst_paired_p99_ratio"] != "NA" {
		t.Errorf("nothing measured: worst_p99_ratio=%q worst_paired_p99_ratio=%q, want NA", got["worst_p99_ratio"], got["worst_paired_p99_ratio"])
	}
}

// BenchmarkPredict is one row of the bench's ensemble (300 trees of depth
// 6, the default of make bench-runtime) through each format, with the
// process CPU per row (cpu-ns/op) beside the wall time, which a busy
// machine inflates:
//
//	go test -run '^$' -bench Predict -benchmem -count 6 ./bench/runtime/
func BenchmarkPredict(b *testing.B) {
	rng := rand.New(rand.NewPCG(15, 0))
	a, err := write(ensemble(rng, 300, 6))
	if err != nil {
		b.Fatal(err)
	}
	X := rows(rng, 1000)
	models, _, err := a.agree(X)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range formats {
		m := models[f]
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				if _, err := m.Predict(X[i%len(X)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
