// Command runtime benchmarks the edge model runtime's formats on the same
// trees (make bench-runtime).
//
// It generates a random binary ensemble (-trees trees of depth -depth over
// the bearing model's six features) and writes it as LightGBM text, XGBoost
// JSON and ONNX (examples/trees). First it checks that the three files,
// loaded by the edge runtime, predict what the ensemble does on -rows
// held-out rows (within 1e-5); the bench fails otherwise. Then, for each
// format:
//
//   - single-row latency (ns per prediction) and allocations per
//     prediction, and a 32-row batch (the runtime has no batch API: 32
//     predictions in a loop), with testing.Benchmark, the predictors taking
//     turns over -repeat rounds and each keeping its best;
//     against the baseline, the LightGBM path as it was before issue 15: the
//     leaves library's PredictSingle on the LightGBM file;
//   - the router's end-to-end p50/p99 at BENCH_RATE (5,000 req/s) against
//     the bare-handler floor, exactly as bench-router measures them: it
//     builds bench/router and runs it with -latency-only, the router serving
//     the format's file and the floor the LightGBM file, both at once in
//     their own processes, taking turns over -rounds (BENCH_ROUNDS, 6)
//     rounds under vegeta (BENCH_DURATION, BENCH_WARMUP, BENCH_WORKERS
//     apply as there), each keeping its best. <format>_floor_spread is the
//     floor's worst round's p99 over its best's: the floor does the same
//     work every round, so a spread far above 1 says the machine was not
//     steady and the ratio measures it more than the router. Both servers
//     are sent the same requests (bench/router); with -aa (BENCH_AA=1) a
//     second floor serving the format's file takes the router's place,
//     and the ratios are what the bench reads between identical servers.
//
// It prints human lines, then one line for machines:
//
//	bench=runtime aa= trees= depth= rate= baseline_ns= <format>_ns= <format>_ratio= <format>_batch32_ns=
//	  <format>_allocs= <format>_p50_ms= <format>_p99_ms= <format>_floor_p99_ms= <format>_p99_ratio=
//	  <format>_paired_p99_ratio= <format>_floor_spread= ... worst_p99_ratio= worst_paired_p99_ratio=
//
// where <format>_ratio is the format's single-row time over the baseline's
// and <format>_p99_ratio the router's p99 serving the format over the
// floor's p99 in the same run (each side's best round); worst_p99_ratio is
// the largest of those (issue 15's target: at most 1.3).
// <format>_paired_p99_ratio is the median over the rounds of the router's
// p99 over the floor's in the same round (bench/router's
// paired_p99_ratio), and worst_paired_p99_ratio the largest of those: one
// lucky floor round or one stall moves the best rounds' ratio, not this.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/dmitryikh/leaves"
)

type config struct {
	trees, depth, rows, repeat int
	seed                       uint64
	vegeta, goCmd              string
	skipRouter                 bool
	aa                         bool   // bench/router -aa: a second floor in the router's place
	rounds                     int    // bench/router's -rounds
	exampleDir                 string // -example-dir: where the example is written and kept
}

func main() {
	log.SetFlags(0)
	var c config
	flag.IntVar(&c.trees, "trees", 300, "trees in the generated ensemble")
	flag.IntVar(&c.depth, "depth", 6, "depth of every tree")
	flag.IntVar(&c.rows, "rows", 1000, "held-out rows the formats must agree on, and the rows predicted")
	flag.IntVar(&c.repeat, "repeat", 3, "rounds of in-process measurements, the predictors taking turns; each keeps its best")
	flag.Uint64Var(&c.seed, "seed", 15, "random seed of the ensemble and the rows")
	flag.StringVar(&c.vegeta, "vegeta", envString("VEGETA", "bin/tools/vegeta"), "vegeta binary, passed to bench/router (VEGETA)")
	flag.StringVar(&c.goCmd, "go", envString("GO", "go"), "the go command that builds bench/router (GO)")
	flag.BoolVar(&c.skipRouter, "skip-router", false, "only the in-process measurements, not the router's")
	flag.BoolVar(&c.aa, "aa", os.Getenv("BENCH_AA") == "1", "an A/A run: bench/router -aa, a second floor serving each format's file in the router's place, to read the bench's own noise (BENCH_AA=1; aa=1 in the final line)")
	flag.IntVar(&c.rounds, "rounds", envInt("BENCH_ROUNDS", 6), "rounds of the floor's and the router's runs per format, taking turns; each keeps its best (BENCH_ROUNDS)")
	flag.StringVar(&c.exampleDir, "example-dir", "", "also write the example (the three files, model card, sample request, validation set) into this directory and keep it, to serve and profile by hand with bench/router -serve")
	flag.Parse()
	if err := run(c); err != nil {
		log.Fatalf("bench-runtime: %v", err)
	}
}

// figures are one format's measurements; NaN where not measured.
type figures struct {
	ns, batchNs, allocs        float64
	p50, p99, floorP99, p99Rat float64
	pairedRat                  float64 // bench/router's paired_p99_ratio
	floorSpread                float64 // bench/router's floor_p99_spread
}

func run(c config) error {
	if c.trees < 1 || c.depth < 1 || c.depth > 16 || c.rows < 32 {
		return fmt.Errorf("want -trees ≥ 1, -depth from 1 to 16 and -rows ≥ 32")
	}
	rng := rand.New(rand.NewPCG(c.seed, 0))
	a, err := write(ensemble(rng, c.trees, c.depth))
	if err != nil {
		return err
	}
	X := rows(rng, c.rows)
	models, worst, err := a.agree(X)
	if err != nil {
		return fmt.Errorf("the formats disagree: %w", err)
	}
	if c.exampleDir != "" {
		if err := writeExample(c.exampleDir, a, X); err != nil {
			return err
		}
	}
	fmt.Printf("%d trees of depth %d, %d features; files: LightGBM %d KiB, XGBoost JSON %d KiB, ONNX %d KiB; %d CPUs, load average %s\n",
		c.trees, c.depth, len(features), len(a.lightgbm)>>10, len(a.xgb)>>10, len(a.onnx)>>10, runtime.NumCPU(), loadAverage())
	fmt.Printf("the three agree with the ensemble on %d held-out rows: largest difference lightgbm %.2g, xgboost %.2g, onnx %.2g\n",
		len(X), worst["lightgbm"], worst["xgboost"], worst["onnx"])

	// The baseline: the leaves library, as inference's LightGBM path used it
	// before issue 15 (the edge no longer links it; only this bench does).
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(a.lightgbm)), true)
	if err != nil {
		return fmt.Errorf("leaves: %w", err)
	}
	for i, x := range X {
		if d := math.Abs(ens.PredictSingle(x, 0) - a.ens.Predict(x)); d > agreeTolerance {
			return fmt.Errorf("leaves row %d differs from the ensemble by %.3g", i, d)
		}
	}
	predictors := map[string]func([]float64) float64{"baseline": func(x []float64) float64 { return ens.PredictSingle(x, 0) }}
	for f, m := range models {
		predictors[f] = func(x []float64) float64 {
			p, err := m.Predict(x)
			if err != nil {
				panic(err) // agree predicted every row already
			}
			return p
		}
	}
	// The predictors take turns, repetition after repetition, and each
	// keeps its best: on a shared machine a burst of someone else's work
	// then skews one run of one predictor, not the comparison.
	names := append([]string{"baseline"}, formats...)
	res := map[string]*figures{}
	for _, name := range names {
		res[name] = &figures{ns: math.Inf(1), batchNs: math.Inf(1), allocs: math.Inf(1),
			p50: math.NaN(), p99: math.NaN(), floorP99: math.NaN(), p99Rat: math.NaN(), pairedRat: math.NaN(), floorSpread: math.NaN()}
	}
	for range c.repeat {
		for _, name := range names {
			f := res[name]
			ns, allocs := measure(predictors[name], X, 1)
			batch, _ := measure(predictors[name], X, 32)
			f.ns, f.allocs, f.batchNs = min(f.ns, ns), min(f.allocs, allocs), min(f.batchNs, batch)
		}
	}
	for _, name := range names {
		f := res[name]
		fmt.Printf("%-9s single row %8.0f ns (%.2f× baseline), 32-row batch %9.0f ns, %.1f allocs per prediction\n",
			name, f.ns, f.ns/res["baseline"].ns, f.batchNs, f.allocs)
	}

	if !c.skipRouter {
		if err := c.routers(a, X, res); err != nil {
			return err
		}
	}
	fmt.Println(line(c, res))
	return nil
}

// measure times predict over the rows, batch rows per operation, with
// testing.Benchmark, and returns ns per operation and allocations per
// prediction.
func measure(predict func([]float64) float64, X [][]float64, batch int) (ns, allocs float64) {
	var sink float64
	r := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			for range batch {
				sink += predict(X[i])
				if i++; i == len(X) {
					i = 0
				}
			}
		}
	})
	_ = sink
	return float64(r.NsPerOp()), float64(r.MemAllocs) / float64(r.N) / float64(batch)
}

// routers writes the files into an example directory, builds bench/router
// and runs it once per format.
func (c config) routers(a *artifacts, X [][]float64, res map[string]*figures) error {
	vegeta, err := filepath.Abs(c.vegeta)
	if err != nil {
		return err
	}
	if _, err := os.Stat(vegeta); err != nil {
		if vegeta, err = exec.LookPath("vegeta"); err != nil {
			return fmt.Errorf("vegeta is not at %q nor on PATH: `make bench-runtime` installs it into bin/tools", c.vegeta)
		}
	}
	work, err := os.MkdirTemp("", "bench-runtime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "example")
	if err := writeExample(dir, a, X); err != nil {
		return err
	}
	router := filepath.Join(work, "router")
	build := exec.Command(c.goCmd, "build", "-o", router, "./bench/router")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build bench/router: %w", err)
	}
	for _, f := range formats {
		name, _ := a.file(f)
		fmt.Printf("--- router serving %s, floor serving model.txt (bench/router -latency-only)\n", name)
		cmd := exec.Command(router, "-example", dir, "-model", name, "-floor-model", "model.txt", "-latency-only", "-vegeta", vegeta, "-rounds", strconv.Itoa(c.rounds), "-aa="+strconv.FormatBool(c.aa))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		var last string
		sc := bufio.NewScanner(io.TeeReader(out, os.Stdout))
		for sc.Scan() {
			last = sc.Text()
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("bench/router for %s: %w", f, err)
		}
		kv := parseLine(last)
		if kv["bench"] != "router" {
			return fmt.Errorf("bench/router for %s did not end with its bench=router line (got %q)", f, last)
		}
		r := res[f]
		r.p50, r.p99, r.floorP99 = kv.num("router_p50_ms"), kv.num("router_p99_ms"), kv.num("floor_p99_ms")
		r.p99Rat = r.p99 / r.floorP99
		r.floorSpread = kv.num("floor_p99_spread")
		r.pairedRat = kv.num("paired_p99_ratio")
	}
	return nil
}

// writeExample writes the three files, a model card (the LightGBM file's
// format and the features), a sample request and a labelled validation
// set (the router's monitoring baseline is built from it) into dir.
func writeExample(dir string, a *artifacts, X [][]float64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var csv, sample strings.Builder
	csv.WriteString(strings.Join(features, ",") + ",label\n")
	rng := rand.New(rand.NewPCG(1, 1))
	for _, x := range X {
		for _, v := range x {
			csv.WriteString(strconv.FormatFloat(v, 'g', -1, 64) + ",")
		}
		label := 0
		if rng.Float64() < a.ens.Predict(x) {
			label = 1
		}
		csv.WriteString(strconv.Itoa(label) + "\n")
	}
	sample.WriteString(`{"features":{`)
	for i, f := range features {
		if i > 0 {
			sample.WriteString(",")
		}
		fmt.Fprintf(&sample, "%q:%s", f, strconv.FormatFloat(X[0][i], 'g', -1, 64))
	}
	sample.WriteString("}}\n")
	files := map[string][]byte{
		"model.yaml":     []byte("format: lightgbm\nfeatures: [" + strings.Join(features, ", ") + "]\n"),
		"sample.json":    []byte(sample.String()),
		"validation.csv": []byte(csv.String()),
	}
	for _, f := range formats {
		name, data := a.file(f)
		files[name] = data
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type keyValues map[string]string

func parseLine(l string) keyValues {
	kv := keyValues{}
	for _, f := range strings.Fields(l) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func (kv keyValues) num(k string) float64 {
	v, err := strconv.ParseFloat(kv[k], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func line(c config, res map[string]*figures) string {
	rate := envString("BENCH_RATE", "5000")
	var b strings.Builder
	aa := 0
	if c.aa {
		aa = 1
	}
	fmt.Fprintf(&b, "bench=runtime aa=%d trees=%d depth=%d rate=%s baseline_ns=%s", aa, c.trees, c.depth, rate, num(res["baseline"].ns, 0))
	worst, worstPaired := math.NaN(), math.NaN()
	for _, f := range formats {
		r := res[f]
		for _, kv := range [][2]string{{"ns", num(r.ns, 0)}, {"ratio", num(r.ns/res["baseline"].ns, 2)}, {"batch32_ns", num(r.batchNs, 0)},
			{"allocs", num(r.allocs, 1)}, {"p50_ms", num(r.p50, 3)}, {"p99_ms", num(r.p99, 3)}, {"floor_p99_ms", num(r.floorP99, 3)},
			{"p99_ratio", num(r.p99Rat, 2)}, {"paired_p99_ratio", num(r.pairedRat, 2)}, {"floor_spread", num(r.floorSpread, 2)}} {
			fmt.Fprintf(&b, " %s_%s=%s", f, kv[0], kv[1])
		}
		worst, worstPaired = larger(worst, r.p99Rat), larger(worstPaired, r.pairedRat)
	}
	fmt.Fprintf(&b, " worst_p99_ratio=%s worst_paired_p99_ratio=%s", num(worst, 2), num(worstPaired, 2))
	return b.String()
}

// larger is the larger of w and v, where NaN is not measured: either one
// if the other is NaN.
func larger(w, v float64) float64 {
	if math.IsNaN(v) || v <= w {
		return w
	}
	return v
}

func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "NA"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
