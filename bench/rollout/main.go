// Command rollout is `make bench-rollout`: how fast a release reaches a fleet
// of factory sites, and how fast a breach takes it back, on the real stack.
//
// For each fleet size it starts, in this one process, a Temporal dev server
// (child process, SQLite in WAL mode), the gateway, the embedded registry,
// the cloud worker and N real edge agents (store on disk, inference router on
// its own port, the desired-state pull loop and heartbeat; no Temporal worker
// per site, as releases do not use one). Then:
//
//  1. rollout: version 1 of examples/bearing-failure is registered; its
//     ModelRegistered event starts the release, which goes through 4 waves
//     (ring canary 1%, r1 10%, r2 30%, the rest), zero bake, one step each,
//     no approval. rollout_s is registration to the release's close.
//  2. breach: version 2 (different bytes) under a policy with an approval
//     gate after r2 and a failure budget of 0 in the last wave. At the gate
//     the registry starts refusing version 2's artifact (HTTP 500), the
//     benchmark approves, every site of the last wave fails to apply, the
//     budget is breached and the release rolls every touched site back.
//     rollback_s is from the breach (the completion of the wait that found
//     the failures) to the release's close, from the server's history.
//  3. reject (-reject): version 3 (the same bytes as 1) to the gate, then the
//     `reject` control; reject_rollback_s is from the signal to the close.
//
// It then reads back every workflow history of the run for its size and
// action counts (see history.actions for what counts), and prints
// flux_pickup_s, what the same waves would wait if each site only pulled
// every 60 s as Flux recommends (see fluxPickup). Each phase also prints its
// activity timeline, the fleet's requests (downloads, reports and their
// latency), CPU of this process and of the dev server, and disk flushes.
//
// One process and one disk stand in for N sites, which is harsher than a
// real fleet in two ways worth knowing when reading the figures: every
// site's fsyncs would share this machine's disk (so the sites' data dirs
// are on /dev/shm by default, -sites-dir: each site as if on a disk of its
// own), and every site's model parsing shares its 2 cores. Over loopback TCP each site needs several descriptors
// at once in this one process; past what the open-files limit allows,
// -transport=auto carries the fleet's HTTP to the gateway and the registry
// over in-memory pipes instead (same handlers, same HTTP, no sockets).
//
// Then, in a child process of its own (-overhead-sites, 1,000 by default), it compares the same rollouts on
// a plain, a signed and a secure stack (overhead.go). The last line is that
// of the largest size that completed, with the overhead ratios:
//
//	bench=rollout sites=<N> rollout_s=<> rollback_s=<> max_history_events=<> flux_pickup_s=<> rollback_10k_s=<> auth_overhead_ratio=<> verify_overhead_ratio=<>
//	  auth_alloc_ratio=<> verify_alloc_ratio=<>
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/app"
)

type options struct {
	sites      []int
	heartbeat  time.Duration
	transport  string
	reject     bool
	timeout    time.Duration
	setup      time.Duration
	example    string
	temporal   string
	dir        string
	sitesDir   string
	keep       bool
	cpuprofile string
	// breachProfile: a CPU profile (<file>.cpu) of the breach's rollback
	// alone, from the rolling-back stage to the close; breachTrace: its
	// execution trace too.
	breachProfile string
	breachTrace   bool
	pprofAddr     string
	logLevel      slog.Level
	store         string // bbolt, or postgres (then each size also runs on bbolt, for the ratio)
	replicas      int
	noBaseline    bool // with postgres: skip the bbolt run of each size (profiling)

	overheadSites  int // fleet size of the trust overhead comparison (overhead.go); 0: none
	overheadRounds int // rollouts per variant
	// overheadVariants limits the comparison to these (profiling one); all
	// three when empty.
	overheadVariants []string
	overheadProfile  string // CPU profile of each variant's rollouts: <file>.<variant>
	overheadAllocs   string // allocation profiles around each variant's rollouts: <file>.<variant>.<round>.{before,after}
	overheadSitesDir string // parent of the overhead stacks' sites' data dirs
	overheadDir      string // parent of the overhead stacks' data dirs (gateway store, Temporal's database)
	overheadOnly     bool   // this process is the overhead comparison's (overheadInChild)
}

func main() {
	var o options
	var sites, level string
	flag.StringVar(&sites, "sites", "1000", "fleet sizes to measure, comma-separated; each gets a fresh stack")
	flag.DurationVar(&o.heartbeat, "heartbeat", agent.DefaultHeartbeat, "agents' heartbeat interval, which is also their long-poll wait and re-report interval")
	flag.StringVar(&o.transport, "transport", "auto", "how agents reach the gateway and registry: tcp (loopback), pipe (in memory), auto (tcp when the file-descriptor limit allows)")
	flag.BoolVar(&o.reject, "reject", true, "also measure a rejection at the approval gate")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up on a release after this long")
	flag.DurationVar(&o.setup, "setup-timeout", 15*time.Minute, "give up if the agents have not all registered and reported after this long")
	flag.StringVar(&o.example, "example", "examples/bearing-failure", "the example model's folder (model.txt, model.yaml, validation.csv)")
	flag.StringVar(&o.temporal, "temporal", "", "Temporal CLI (default: app.FindTemporal)")
	flag.StringVar(&o.dir, "dir", "", "parent of the data dirs (default: the system temp dir)")
	shm := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm = "/dev/shm"
	}
	flag.StringVar(&o.sitesDir, "sites-dir", shm, "parent of the sites' own data dirs (default /dev/shm where there is one: a tmpfs takes the sites' fsyncs\noff the shared disk, as if each site had a disk of its own as real ones do; \"\": inside the data dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep each size's data dir (Temporal db and log, directory, sites)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&o.breachProfile, "breach-profile", "", "write a CPU profile (<file>.cpu) of the breach's rollback alone, from the release's rolling-back\nstage to its close (not with -cpuprofile)")
	flag.BoolVar(&o.breachTrace, "breach-trace", false, "with -breach-profile, also an execution trace (<file>.trace); it slows the phase down several times over")
	flag.StringVar(&o.pprofAddr, "pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) while running")
	flag.StringVar(&level, "log", "error", "log level of the stack's components: debug, info, warn, error")
	flag.StringVar(&o.store, "store", "bbolt", "where the gateway keeps the fleet: bbolt, or postgres (a PostgreSQL server this run starts, as the tests do; each size then also runs on bbolt for ratio_vs_bbolt)")
	flag.BoolVar(&o.noBaseline, "no-bbolt", false, "with -store postgres: skip each size's bbolt run (no ratio_vs_bbolt; to profile or measure the PostgreSQL stack alone)")
	flag.IntVar(&o.replicas, "replicas", 1, "gateway replicas (more than 1 needs -store postgres)")
	flag.IntVar(&o.overheadSites, "overhead-sites", 1000, "also roll out to this many sites on a plain, a signed and a secure (mTLS, tokens) stack\nfor auth_overhead_ratio and verify_overhead_ratio; 0: skip")
	flag.IntVar(&o.overheadRounds, "overhead-rounds", 12, "measured rollouts per stack of the overhead comparison, after a warm-up (the median of the rounds' ratios counts;\na rollout of 1,000 sites takes about 2 s, and one round's ratio moves by ±0.2 with Temporal's and the progress reads' timing)")
	flag.StringVar(&o.overheadProfile, "overhead-cpuprofile", "", "write a CPU profile of each measured rollout of the overhead comparison to this file + .<variant>.<round>")
	flag.StringVar(&o.overheadAllocs, "overhead-allocprofile", "", "write the allocation profile before and after each measured rollout of the overhead comparison to this file +\n.<variant>.<round>.before and .after (what the rollout allocated: go tool pprof -sample_index=alloc_space -diff_base <before> <after>)")
	flag.StringVar(&o.overheadSitesDir, "overhead-sites-dir", shm, "parent of the overhead stacks' sites' data dirs (default /dev/shm where there is one: each site\nas if on a disk of its own, so the comparison measures what trust costs, not 1,000 sites' fsyncs queueing on one disk); \"\": -sites-dir")
	flag.StringVar(&o.overheadDir, "overhead-dir", shm, "parent of the overhead stacks' own data dirs, the gateway's store and Temporal's database (default /dev/shm\nwhere there is one: the three stacks' commits, the same in each, then do not queue behind one another and the\nmachine's other work on one shared disk); \"\": -dir")
	flag.BoolVar(&o.overheadOnly, "overhead-only", false, "run only the overhead comparison (what the benchmark runs in a child process); its last line is the ratios")
	var onlyVariants string
	flag.StringVar(&onlyVariants, "overhead-variants", "", "run only these stacks of the comparison (comma-separated: plain, signed, secure), e.g. to profile one with -cpuprofile")
	flag.Parse()
	if onlyVariants != "" {
		o.overheadVariants = strings.Split(onlyVariants, ",")
	}
	if err := o.parse(sites, level); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rollout:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-rollout:", err)
		os.Exit(1)
	}
}

func (o *options) parse(sites, level string) error {
	for _, s := range strings.Split(sites, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 4 {
			return fmt.Errorf("-sites %q: want sizes of at least 4 sites (one per wave), comma-separated", sites)
		}
		o.sites = append(o.sites, n)
	}
	switch o.transport {
	case "auto", "tcp", "pipe":
	default:
		return fmt.Errorf("-transport %q: want tcp, pipe or auto", o.transport)
	}
	switch {
	case o.store != "bbolt" && o.store != "postgres":
		return fmt.Errorf("-store %q: want bbolt or postgres", o.store)
	case o.replicas < 1 || (o.replicas > 1 && o.store != "postgres"):
		return fmt.Errorf("-replicas %d: want 1, or more with -store postgres", o.replicas)
	}
	if o.overheadSites != 0 && (o.overheadSites < 4 || o.overheadRounds < 1) {
		return fmt.Errorf("-overhead-sites %d -overhead-rounds %d: want at least 4 sites and 1 round, or -overhead-sites 0", o.overheadSites, o.overheadRounds)
	}
	if o.breachProfile != "" && o.cpuprofile != "" {
		return fmt.Errorf("-breach-profile and -cpuprofile: one CPU profile at a time")
	}
	if err := o.logLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("-log %q: %w", level, err)
	}
	if o.temporal == "" {
		bin, err := app.FindTemporal()
		if err != nil {
			return err
		}
		o.temporal = bin
	}
	return nil
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if o.pprofAddr != "" {
		// Its own mux on its own listener: http.DefaultServeMux is where
		// net/http/pprof registers, and nothing else here serves it.
		ln, err := net.Listen("tcp", o.pprofAddr)
		if err != nil {
			return err
		}
		defer ln.Close()
		go func() { _ = http.Serve(ln, http.DefaultServeMux) }()
	}
	fdLimit := raiseFileLimit()
	ex, err := loadExample(o.example)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	fmt.Fprintf(out, "bench-rollout: sizes %v, heartbeat %s, open-files limit %d, %s\n", o.sites, o.heartbeat, fdLimit, ex.describe())

	if o.store == "postgres" {
		return runPostgres(ctx, o, fdLimit, ex, log, out)
	}
	if o.overheadOnly {
		ov, err := measureOverhead(ctx, o, o.overheadSites, fdLimit, ex, log, out)
		if err != nil {
			return err
		}
		ov.print(out)
		fmt.Fprintln(out, ov.figures())
		return nil
	}
	var results []result
	var failed []error
	for _, n := range o.sites {
		r, err := measure(ctx, o, n, fdLimit, ex, log, out, "", 1)
		if err != nil {
			failed = append(failed, fmt.Errorf("%d sites: %w", n, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		results = append(results, r)
	}
	// The trust overhead in a process of its own: after a 10,000-site
	// stack this one runs measurably slower for a while, and stacks of
	// 1,000 before it slow the 10,000 down.
	figures := (*overhead)(nil).figures()
	if o.overheadSites > 0 && ctx.Err() == nil {
		if f, err := overheadInChild(ctx, out); err != nil {
			failed = append(failed, fmt.Errorf("overhead: %w", err))
		} else {
			figures = f
		}
	}
	fmt.Fprintln(out)
	for _, err := range failed {
		fmt.Fprintf(out, "size FAILED %v\n", err)
	}
	if len(results) == 0 {
		return errors.Join(failed...)
	}
	for _, r := range results {
		fmt.Fprintln(out, r.line())
		r.printTargets(out)
	}
	// The final line is the largest size that completed; a size that did
	// not is reported above and makes the exit status 1.
	last := slices.MaxFunc(results, func(a, b result) int { return a.sites - b.sites })
	// rollback_10k_s is the 10,000-site rollback (issue 18's target: 5 s),
	// "-" when that size was not run or did not complete.
	rollback10k := "-"
	for _, r := range results {
		if r.sites == 10000 {
			rollback10k = fmt.Sprintf("%.2f", r.rollback.Seconds())
		}
	}
	fmt.Fprintf(out, "bench=rollout sites=%d rollout_s=%.2f rollback_s=%.2f max_history_events=%d flux_pickup_s=%.1f rollback_10k_s=%s %s\n",
		last.sites, last.rollout.Seconds(), last.rollback.Seconds(), last.maxHistory, last.flux.Seconds(), rollback10k, figures)
	return errors.Join(failed...)
}

// measure runs the three phases on a fresh stack of n sites.
func measure(ctx context.Context, o options, n int, fdLimit uint64, ex example, log *slog.Logger, out io.Writer, store string, replicas int) (result, error) {
	return measureOn(ctx, o, n, fdLimit, ex, log, out, stackConfig{store: store, replicas: replicas, variant: plain}, (*bench).phases)
}

// phases are the full benchmark: rollout, breach, reject, cost.
func (b *bench) phases(ctx context.Context, r *result) error {
	if err := b.rollout(ctx, r); err != nil {
		return err
	}
	if err := b.breach(ctx, r); err != nil {
		return err
	}
	if b.o.reject {
		if err := b.reject(ctx, r); err != nil {
			return err
		}
	}
	if err := b.cost(ctx, r); err != nil {
		return err
	}
	r.flux = fluxPickup(ringSizes(b.n), fluxInterval)
	b.printf("  flux: %s\n", fluxExplain(ringSizes(b.n), fluxInterval))
	return nil
}

// measureOn starts a fresh stack of n sites as sc says (store, replicas,
// variant; the rest comes from o), waits until the fleet is idle, runs
// phases on it and tears it down.
func measureOn(ctx context.Context, o options, n int, fdLimit uint64, ex example, log *slog.Logger, out io.Writer, sc stackConfig, phases func(*bench, context.Context, *result) error) (r result, err error) {
	r.sites = n
	// Over loopback TCP each site holds about six descriptors at the peak of
	// a wave (its router's listener, both ends of its long poll, both ends
	// of its download, a heartbeat); in memory, only the listener.
	pipes := o.transport == "pipe" || (o.transport == "auto" && uint64(6*n+2000) > fdLimit)
	r.transport = map[bool]string{false: "tcp", true: "pipe"}[pipes]

	var dirs []string
	abandoned := false
	defer func() {
		for _, d := range dirs {
			if o.keep || abandoned {
				fmt.Fprintf(out, "  data left in %s\n", d)
				continue
			}
			os.RemoveAll(d)
		}
	}()
	dir, err := os.MkdirTemp(o.dir, fmt.Sprintf("bench-rollout-%d-*", n))
	if err != nil {
		return r, err
	}
	dirs = append(dirs, dir)
	sitesDir := filepath.Join(dir, "sites")
	if o.sitesDir != "" {
		if sitesDir, err = os.MkdirTemp(o.sitesDir, fmt.Sprintf("bench-rollout-sites-%d-*", n)); err != nil {
			return r, err
		}
		dirs = append(dirs, sitesDir)
	}
	fmt.Fprintf(out, "\n== %d sites, %s (%s transport, data in %s, sites in %s)\n", n, sc.variant, r.transport, dir, sitesDir)

	res := startSampler()
	defer res.stop()
	began := time.Now()
	sc.dir, sc.sitesDir, sc.sites, sc.pipes, sc.heartbeat, sc.temporal, sc.log = dir, sitesDir, n, pipes, o.heartbeat, o.temporal, log
	s, err := startStack(ctx, sc)
	if err != nil {
		return r, err
	}
	defer func() {
		if err != nil {
			// Say what happened before the teardown, which can take long
			// when the gateway is saturated.
			fmt.Fprintf(out, "  FAILED: %v\n  fleet requests so far: %s; process peaks: %s\n", err, s.meter.snapshot(), res.peak())
		}
		if !closeWithin(s, 2*time.Minute) {
			abandoned = true
			fmt.Fprintln(out, "  teardown still waiting after 2m (the gateway drains the directory writes queued while it was saturated): abandoned")
		}
	}()
	idle, err := s.waitIdle(ctx, o.setup, 2*o.heartbeat)
	if err != nil {
		return r, err
	}
	r.setup = time.Since(began)
	fmt.Fprintf(out, "  stack up in %.1fs: %d agents registered and reported, %s (rings %v)\n", r.setup.Seconds(), n, idle, ringSizes(n))

	b := &bench{o: o, s: s, ex: ex, n: n, out: out, temporalPID: s.temporal.PID(), dev: deviceOf(dir)}
	if err := phases(b, ctx, &r); err != nil {
		return r, err
	}
	r.peak = res.peak()
	fmt.Fprintf(out, "  process peaks: %s\n", r.peak)
	return r, nil
}

// closeWithin tears the stack down, giving up (and leaking it) after d.
func closeWithin(s *stack, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// raiseFileLimit lifts the open-files soft limit to the hard limit: every
// site's router listens on its own port.
func raiseFileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// example is the model the releases roll out, read once.
type example struct {
	card       app.ModelCard
	artifact   []byte
	validation []byte
}

func loadExample(dir string) (example, error) {
	var ex example
	var err error
	if ex.card, err = app.ReadModelCard(filepath.Join(dir, app.ModelCardFile)); err != nil {
		return ex, err
	}
	if ex.card.Validation == nil {
		return ex, fmt.Errorf("%s declares no validation", filepath.Join(dir, app.ModelCardFile))
	}
	if ex.artifact, err = os.ReadFile(filepath.Join(dir, "model.txt")); err != nil {
		return ex, err
	}
	if ex.validation, err = os.ReadFile(ex.card.Validation.Data); err != nil {
		return ex, err
	}
	return ex, nil
}

func (ex example) describe() string {
	return fmt.Sprintf("model %s (%d KiB, %s, %d features)", modelName, len(ex.artifact)>>10, ex.card.Format, len(ex.card.Features))
}

// overheadInChild runs the overhead comparison in a fresh process (this
// program with -overhead-only), copies its output and returns its last
// line, the ratios.
func overheadInChild(ctx context.Context, out io.Writer) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, exe, append(slices.Clone(os.Args[1:]), "-overhead-only")...)
	cmd.Stderr = os.Stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	last := ""
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		last = sc.Text()
		fmt.Fprintln(out, last)
	}
	if err := cmd.Wait(); err != nil {
		return "", err
	}
	if !strings.HasPrefix(last, "auth_overhead_ratio=") {
		return "", fmt.Errorf("the comparison ended without its ratios (last line %q)", last)
	}
	return last, nil
}
