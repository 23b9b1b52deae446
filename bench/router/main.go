// Command router benchmarks the edge inference router (make bench-router).
//
// It serves the example model three ways, each in its own process, and
// loads each with vegeta, a separate process too, at a fixed rate:
//
//   - the floor: the model behind a bare net/http handler (decode JSON,
//     vectorise, predict, write JSON), no routing;
//   - the router: an edge.Agent serving two versions at 90/10 with sticky
//     route keys, an API key, a shadow version and its metrics;
//   - nginx as a reverse proxy in front of the floor, if nginx is on PATH,
//     to put the router's overhead beside a proxy hop's.
//
// Every server is sent the same requests (an API key and one of -keys route
// keys in headers): the floor and nginx ignore the headers, the router acts
// on them, so the difference is the router's work on a request.
//
// The three take turns over a few rounds, who goes first swapping every
// round, and each keeps its best; floor_p99_spread, the floor's worst
// round's p99 over its best's, says how steady the machine was. Then it
// finds the router's maximum throughput (vegeta at -rate=0 with a
// bounded number of workers) and the resident memory of an agent process
// with one model loaded. It prints human lines, then one line for machines:
//
//	bench=router aa= rate= floor_p50_ms= floor_p99_ms= router_p50_ms= router_p99_ms= nginx_p99_ms= p99_ratio= paired_p99_ratio= max_rps= rss_mib= floor_p99_spread=
//
// p99_ratio is the router's best round's p99 over the floor's best round's;
// paired_p99_ratio the median over the rounds of the router's p99 over the
// floor's in the same round, which a lucky or stalled round moves less.
//
// The load generator shares the machine with the servers, so the figures
// are for comparing the three, not absolute capacity.
//
// -aa (BENCH_AA=1) is an A/A run: a second floor takes the router's place
// (aa=1 in the final line), and the ratios show what the bench reads
// between two identical servers on this machine now, the noise any
// router's ratio is read against.
//
// -model and -floor-model serve another model file of the example (its
// format detected), and -latency-only keeps only the floor's and the
// router's fixed-rate runs: bench-runtime runs it so for each model format.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	rate         int
	duration     time.Duration
	warmup       time.Duration
	maxDuration  time.Duration
	maxWorkers   int
	fixedWorkers int
	rounds       int
	keys         int
	vegeta       string
	example      string
	model        string // the router's model file, in example
	floorModel   string // the floor's
	latencyOnly  bool   // only the fixed-rate runs of the floor and the router
	aa           bool   // a second floor in the router's place: the bench's own noise
	work         string // temp dir: targets, results, nginx
}

func main() {
	log.SetFlags(0)
	serve := flag.String("serve", "", "serve instead of benchmarking: floor, router or agent (the bench starts these itself)")
	addr := flag.String("addr", "127.0.0.1:0", "with -serve: listen address")
	data := flag.String("data", "", "with -serve router or agent: the agent's site directory")
	var c config
	flag.IntVar(&c.rate, "rate", envInt("BENCH_RATE", 5000), "requests per second of the fixed-rate runs (BENCH_RATE)")
	flag.DurationVar(&c.duration, "duration", envDuration("BENCH_DURATION", 10*time.Second), "length of each fixed-rate run (BENCH_DURATION)")
	flag.DurationVar(&c.warmup, "warmup", envDuration("BENCH_WARMUP", time.Second), "the first part of each run's attack, left out of its figures (BENCH_WARMUP)")
	flag.DurationVar(&c.maxDuration, "max-duration", envDuration("BENCH_MAX_DURATION", 5*time.Second), "length of the maximum-throughput run (BENCH_MAX_DURATION)")
	flag.IntVar(&c.maxWorkers, "max-workers", envInt("BENCH_MAX_WORKERS", 32), "vegeta workers of the maximum-throughput run (BENCH_MAX_WORKERS)")
	flag.IntVar(&c.fixedWorkers, "workers", envInt("BENCH_WORKERS", 256), "bound on vegeta's workers and connections in the fixed-rate runs (BENCH_WORKERS)")
	flag.IntVar(&c.rounds, "rounds", envInt("BENCH_ROUNDS", 2), "rounds of floor, nginx and router runs; each keeps its best (BENCH_ROUNDS)")
	flag.IntVar(&c.keys, "keys", 1000, "distinct route keys (machines) the router is sent")
	flag.StringVar(&c.vegeta, "vegeta", envString("VEGETA", "bin/tools/vegeta"), "vegeta binary (VEGETA)")
	flag.StringVar(&c.example, "example", "examples/bearing-failure", "directory of model.txt, model.yaml, sample.json and validation.csv")
	flag.StringVar(&c.model, "model", "model.txt", "the model file the router serves, in -example (format: the card's for model.txt, else detected)")
	flag.StringVar(&c.floorModel, "floor-model", "", "the model file the floor serves, in -example (default: -model)")
	flag.BoolVar(&c.latencyOnly, "latency-only", false, "only the floor's and the router's fixed-rate runs: no nginx, maximum throughput or agent RSS (bench-runtime)")
	flag.BoolVar(&c.aa, "aa", os.Getenv("BENCH_AA") == "1", "an A/A run: a second floor (serving -model) takes the router's place, so the ratios show what the bench measures between two identical servers (BENCH_AA=1)")
	flag.Parse()

	if *serve != "" {
		if err := runServer(*serve, *addr, c.example, c.model, *data); err != nil {
			log.Fatalf("serve %s: %v", *serve, err)
		}
		return
	}
	if c.rounds < 1 {
		c.rounds = 1
	}
	if c.floorModel == "" {
		c.floorModel = c.model
	}
	if err := run(c); err != nil {
		log.Fatalf("bench-router: %v", err)
	}
}

// results are the figures of the final line; NaN prints as NA.
type results struct {
	floor, router, nginx *report
	maxRPS               float64
	rssMiB               float64
	floorSpread          float64 // the floor's worst round's p99 over its best's
	pairedRatio          float64 // the median over the rounds of the router's p99 over the floor's in the same round
}

// noisySpread is the floor_p99_spread above which the bench says the
// machine was not steady enough for its p99 ratio.
const noisySpread = 2.0

func run(c config) error {
	var err error
	if c.vegeta, err = findVegeta(c.vegeta); err != nil {
		return err
	}
	if c.work, err = os.MkdirTemp("", "bench-router-"); err != nil {
		return err
	}
	defer os.RemoveAll(c.work)
	c.example, _ = filepath.Abs(c.example)
	ex, err := loadExample(c.example, c.model)
	if err != nil {
		return err
	}
	if _, err := loadExample(c.example, c.floorModel); err != nil {
		return err
	}
	fmt.Printf("rate %d req/s, %s per run after a %s warm-up, %d rounds; %d CPUs, load average %s; vegeta %s\n",
		c.rate, c.duration, c.warmup, c.rounds, runtime.NumCPU(), loadAverage(), c.vegeta)
	fmt.Printf("router serves %s (%s), the floor %s\n", c.model, ex.format, c.floorModel)
	routerMode := "router"
	if c.aa {
		routerMode = "floor"
		fmt.Println("A/A run (-aa): a second floor takes the router's place; its figures are printed as the router's")
	}

	floor, err := startChild("floor", c.example, c.floorModel, c.work)
	if err != nil {
		return err
	}
	defer floor.stop()
	router, err := startChild(routerMode, c.example, c.model, c.work)
	if err != nil {
		return err
	}
	defer router.stop()
	if !c.aa {
		if err := checkRouter(router.url, ex.sample); err != nil {
			return err
		}
	}
	nginxURL, stopNginx := "", func() {}
	if !c.latencyOnly {
		if nginxURL, stopNginx, err = c.startNginx(floor.url); err != nil {
			return err
		}
	}
	defer stopNginx()

	// The servers take turns, round after round, and each keeps its best
	// round: on a shared machine a burst of someone else's work then skews
	// one round of one server, not the comparison. Who goes first swaps
	// every round, so that a machine getting busier or quieter over the run
	// does not favour either. The floor's p99 from its worst round to its
	// best (floor_p99_spread) says how steady the machine was: the floor
	// does the same work every round, so a spread far above 1 is the
	// machine, and the ratio of two best rounds then measures less.
	res := results{maxRPS: math.NaN(), rssMiB: math.NaN()}
	var floorP99s, routerP99s []float64
	for round := 1; round <= c.rounds; round++ {
		runs := []func() error{
			func() error {
				f, err := c.measure(fmt.Sprintf("floor-%d", round), floor.url, floor)
				if err == nil {
					res.floor = best(res.floor, f)
					floorP99s = append(floorP99s, f.p99)
				}
				return err
			},
			func() error {
				if nginxURL == "" {
					return nil
				}
				n, err := c.measure(fmt.Sprintf("nginx-%d", round), nginxURL, nil)
				if err == nil {
					res.nginx = best(res.nginx, n)
				}
				return err
			},
			func() error {
				r, err := c.measure(fmt.Sprintf("router-%d", round), router.url, router)
				if err == nil {
					res.router = best(res.router, r)
					routerP99s = append(routerP99s, r.p99)
				}
				return err
			},
		}
		if round%2 == 0 {
			slices.Reverse(runs)
		}
		for _, run := range runs {
			if err := run(); err != nil {
				return err
			}
		}
	}
	res.floorSpread = slices.Max(floorP99s) / slices.Min(floorP99s)
	paired := roundRatios(routerP99s, floorP99s)
	res.pairedRatio = median(paired)
	shown := make([]string, len(paired))
	for i, r := range paired {
		shown[i] = num(r, 2)
	}
	fmt.Printf("router p99 over the floor's, round by round: %s (median %s)\n", strings.Join(shown, " "), num(res.pairedRatio, 2))
	if res.floorSpread > noisySpread {
		fmt.Printf("NOTE: the floor's p99 moved %.1f× between its rounds (same work each round): the machine was not steady, and the p99 ratio of the best rounds says little; run again when it is quiet, or with more rounds (BENCH_ROUNDS)\n", res.floorSpread)
	}
	stopNginx()
	floor.stop()
	if !c.aa {
		if rss, err := router.rssMiB(); err == nil {
			fmt.Printf("router   RSS after the runs: %.1f MiB (two versions and a shadow of the model)\n", rss)
		}
		printRouterMetrics(router.url)
	}
	if !c.latencyOnly && !c.aa {
		if res.maxRPS, err = c.maxThroughput(router.url); err != nil {
			return err
		}
	}
	router.stop()

	if !c.latencyOnly {
		if res.rssMiB, err = agentRSS(c.example, c.model, c.work); err != nil {
			return err
		}
		fmt.Printf("agent    RSS with one model loaded, after 200 requests: %.1f MiB\n", res.rssMiB)
	}
	fmt.Printf("best rounds: floor p99 %s ms, router p99 %s ms, nginx p99 %s ms; server CPU floor %s µs/req, router %s µs/req (shadow included); load average now %s\n",
		ms(res.floor.p99), ms(res.router.p99), ms(res.nginx.p99Or()), num(res.floor.cpuPerReq, 1), num(res.router.cpuPerReq, 1), loadAverage())
	fmt.Println(res.line(c.rate, c.aa))
	return nil
}

// roundRatios is a[i]/b[i], round by round.
func roundRatios(a, b []float64) []float64 {
	r := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		r = append(r, a[i]/b[i])
	}
	return r
}

// median of the rounds' ratios: the two runs of a round ran back to back,
// so a machine that drifts slower or faster over the bench moves both, and
// a stall or a lucky quiet spell in one round moves one ratio of several,
// not the median. NaN without rounds.
func median(r []float64) float64 {
	if len(r) == 0 {
		return math.NaN()
	}
	r = slices.Sorted(slices.Values(r))
	if n := len(r); n%2 == 0 {
		return (r[n/2-1] + r[n/2]) / 2
	}
	return r[len(r)/2]
}

// best is the run with the lower p99.
func best(a, b *report) *report {
	if a == nil || b.p99 < a.p99 {
		return b
	}
	return a
}

// loadAverage is the 1-minute load average, to judge how shared the
// machine was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func (r *results) line(rate int, aa bool) string {
	ratio := r.router.p99 / r.floor.p99
	return fmt.Sprintf("bench=router aa=%d rate=%d floor_p50_ms=%s floor_p99_ms=%s router_p50_ms=%s router_p99_ms=%s nginx_p99_ms=%s p99_ratio=%s paired_p99_ratio=%s max_rps=%s rss_mib=%s floor_p99_spread=%s",
		btoi(aa), rate, ms(r.floor.p50), ms(r.floor.p99), ms(r.router.p50), ms(r.router.p99), ms(r.nginx.p99Or()), num(ratio, 2), num(r.pairedRatio, 2), num(r.maxRPS, 0), num(r.rssMiB, 1), num(r.floorSpread, 2))
}

func ms(d float64) string { return num(d, 3) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func num(v float64, prec int) string {
	if v != v { // NaN: not measured
		return "NA"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
