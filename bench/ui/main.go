// Command ui is `make bench-ui`: how fast the fleet dashboard renders for
// a large fleet, and what an open dashboard costs the gateway.
//
// For an empty fleet (the baseline) and each size of -sites it starts a
// real gateway in a child process (TLS, the embedded issuer and role
// model, the bbolt fleet directory, the signal queue and drift monitor;
// no Temporal, which the fleet page does not read) and fills its
// directory with that many sites, as their agents' reports would. Then,
// in one headless Chromium signed in through the gateway's one-time link:
//
//  1. load: the fleet page (/ui/fleet, its default page of 100 sites, the
//     filters and the per-version counts over the whole fleet) is loaded
//     -runs times after a warm-up; first_ms is the median first
//     contentful paint, loaded_ms the median end of the load event, both
//     from the navigation's start (Navigation and Paint Timing);
//  2. idle: the gateway's CPU time (/proc, user+system) over -idle with
//     no dashboard open, then with -dashboards fleet pages open, each
//     with its live stream (the page rendered again every 2 s and pushed
//     when it changed); per-dashboard CPU is the difference, divided by
//     the dashboards, as a percentage of one core.
//
// Ratios are against the empty fleet measured in the same run. The last
// line:
//
//	bench=ui sites=<n,..> fleet_0_loaded_ms= fleet_<n>_first_ms= fleet_<n>_loaded_ms= fleet_<n>_ratio= idle_cpu_none_pct= idle_cpu_per_dashboard_pct= idle_cpu_per_dashboard_<n>_pct= ...
//
// idle_cpu_per_dashboard_pct is at the first size of -sites (1,000 by
// default), the target fleet.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type options struct {
	sites      []int
	runs       int
	dashboards int
	idle       time.Duration
	settle     time.Duration
	chromium   string
	dir        string
	logLevel   string
}

func main() {
	var o options
	var sites, child string
	var childSites int
	flag.StringVar(&sites, "sites", "1000,10000", "fleet sizes to measure, comma-separated (each against an empty fleet)")
	flag.IntVar(&o.runs, "runs", 5, "loads of the fleet page per size (the median counts)")
	flag.IntVar(&o.dashboards, "dashboards", 5, "fleet pages open at once for the idle CPU measurement")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "how long the gateway's CPU is measured, with and without dashboards open")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after opening or closing dashboards before measuring")
	flag.StringVar(&o.chromium, "chromium", "", "the browser (default: chromium on PATH)")
	flag.StringVar(&o.dir, "dir", "", "parent of the gateways' data dirs (default: the system temp dir)")
	flag.StringVar(&o.logLevel, "log", "error", "the gateways' log level: debug, info, warn, error")
	flag.StringVar(&child, "gateway-child", "", "(internal) run the gateway in this data dir")
	flag.IntVar(&childSites, "child-sites", 0, "(internal) sites the child's directory holds")
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ui: -log:", err)
		os.Exit(2)
	}
	if child != "" {
		if err := runChild(child, childSites, level); err != nil {
			fmt.Fprintln(os.Stderr, "bench-ui gateway:", err)
			os.Exit(1)
		}
		return
	}
	if err := o.parse(sites); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ui:", err)
		os.Exit(2)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ui:", err)
		os.Exit(1)
	}
}

func (o *options) parse(sites string) error {
	for f := range strings.SplitSeq(sites, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100_000 {
			return fmt.Errorf("-sites %q: want sizes from 1 to 100000", f)
		}
		o.sites = append(o.sites, n)
	}
	if o.runs < 1 || o.runs > 100 || o.dashboards < 1 || o.dashboards > 50 {
		return errors.New("-runs 1..100 and -dashboards 1..50")
	}
	if o.idle < time.Second || o.idle > time.Hour || o.settle < 0 || o.settle > 10*time.Minute {
		return errors.New("-idle 1s..1h and -settle 0..10m")
	}
	return nil
}

// sizeResult is one fleet size's figures.
type sizeResult struct {
	sites          int
	load           pageTiming
	cpuNone, cpuOn float64 // percent of a core
}

func (r sizeResult) perDashboard(n int) float64 { return (r.cpuOn - r.cpuNone) / float64(n) }

func run(o options, out io.Writer) error {
	path, err := findChromium(o.chromium)
	if err != nil {
		return err
	}
	b, err := newBrowser(path)
	if err != nil {
		return err
	}
	defer b.cancel()
	dir, err := os.MkdirTemp(o.dir, "bench-ui-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var results []sizeResult
	for _, n := range append([]int{0}, o.sites...) {
		r, err := measureSize(o, b, filepath.Join(dir, strconv.Itoa(n)), n, out)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	base := results[0]
	line := []string{"bench=ui", "sites=" + joinInts(o.sites), fmt.Sprintf("dashboards=%d", o.dashboards),
		fmt.Sprintf("fleet_0_first_ms=%.0f", base.load.FirstMs), fmt.Sprintf("fleet_0_loaded_ms=%.0f", base.load.LoadedMs)}
	for _, r := range results[1:] {
		line = append(line,
			fmt.Sprintf("fleet_%d_first_ms=%.0f", r.sites, r.load.FirstMs),
			fmt.Sprintf("fleet_%d_loaded_ms=%.0f", r.sites, r.load.LoadedMs),
			fmt.Sprintf("fleet_%d_ratio=%.2f", r.sites, r.load.LoadedMs/max(base.load.LoadedMs, 1)))
	}
	line = append(line, fmt.Sprintf("idle_cpu_none_pct=%.2f", results[1].cpuNone),
		fmt.Sprintf("idle_cpu_per_dashboard_pct=%.2f", results[1].perDashboard(o.dashboards)))
	for _, r := range results {
		line = append(line, fmt.Sprintf("idle_cpu_per_dashboard_%d_pct=%.2f", r.sites, r.perDashboard(o.dashboards)))
	}
	fmt.Fprintln(out, strings.Join(line, " "))
	return nil
}

// measureSize runs one gateway with n sites: loads, then idle CPU.
func measureSize(o options, b *browser, dir string, n int, out io.Writer) (sizeResult, error) {
	r := sizeResult{sites: n}
	start := time.Now()
	c, err := startChild(dir, n, o.logLevel)
	if err != nil {
		return r, err
	}
	defer c.stop()
	fmt.Fprintf(out, "sites=%d: gateway up and filled in %s\n", n, time.Since(start).Round(time.Millisecond))
	if err := b.signIn(c.ready.Link); err != nil {
		return r, fmt.Errorf("sign in: %w", err)
	}
	fleet := c.ready.URL + "/ui/fleet"
	if r.load, err = b.measure(fleet, o.runs); err != nil {
		return r, err
	}
	if want := min(n, 100); r.load.Rows != want {
		return r, fmt.Errorf("the fleet page of %d sites lists %d, want %d", n, r.load.Rows, want)
	}
	fmt.Fprintf(out, "sites=%d: fleet page first paint %.0f ms, loaded %.0f ms (median of %d)\n", n, r.load.FirstMs, r.load.LoadedMs, o.runs)

	if r.cpuNone, err = idleCPU(c, o); err != nil {
		return r, err
	}
	closeAll, err := b.openDashboards(fleet, o.dashboards)
	if err != nil {
		return r, err
	}
	r.cpuOn, err = idleCPU(c, o)
	closeAll()
	if err != nil {
		return r, err
	}
	fmt.Fprintf(out, "sites=%d: gateway CPU at idle %.2f%% of a core with no dashboard, %.2f%% with %d open: %.2f%% each\n",
		n, r.cpuNone, r.cpuOn, o.dashboards, r.perDashboard(o.dashboards))
	return r, nil
}

// idleCPU waits -settle, then returns the child's CPU over -idle, in
// percent of one core.
func idleCPU(c *child, o options) (float64, error) {
	time.Sleep(o.settle)
	before, err := c.cpu()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(o.idle)
	after, err := c.cpu()
	if err != nil {
		return 0, err
	}
	return 100 * float64(after-before) / float64(time.Since(t0)), nil
}

func joinInts(v []int) string {
	var s []string
	for _, n := range v {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}
