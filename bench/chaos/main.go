// Command chaos is `make chaos`: releases that stay right when processes
// die. It runs the stack as production does, each part its own process —
// the Temporal dev server, the gateway, the cloud worker and N edge agents
// (the modelfleet binary's `gateway`, `worker` and `edge` commands) — plus
// the model registry in this process (Azure ML's stand-in, which is not
// under test), and releases version
// after version of examples/bearing-failure through a gated, baked,
// two-wave policy while it SIGKILLs and restarts a process every few
// seconds: each kind in turn (gateway, worker, Temporal, an agent), takes
// an agent offline for several seconds, and corrupts a stored model file
// before restarting an agent.
//
// Authentication is on (-auth, the default; trust.go): the gateway on TLS
// verifying OIDC tokens (an issuer the run hosts, as Entra ID's stand-in)
// with a role bindings file, every agent enrolled with a join token from
// `modelfleet site enroll` and talking mTLS, restarted from the identity
// on its disk with no token, versions signed by the worker with the
// gateway's release keys and verified by every site against the keys it
// pinned at enrolment, gates approved with `modelfleet release approve`.
// The final line then gains auth=on enrolments=<> reenrolled=0
// unsigned=0: no site's certificate changed (none needed a new join
// token), every version stored at a site came with its signed statement.
//
// A site's disk fills up (-disk-full; disk.go) and a workload runner per
// site runs as its own process on an MQTT broker the run hosts, killed
// with the rest (-workloads; workloads.go); each adds its invariants and
// figures to the final line.
//
// Invariants, checked throughout from outside (observe.go) and reported:
//
//   - every release ends in a terminal state within -release-timeout
//     (stuck counts those that did not);
//   - no desired-state revision of a site is ever seen with two contents
//     (duplicate_steps) and no site's revision goes backwards
//     (revision_regressions);
//   - every site answers /score for the model whenever its agent is up,
//     once it has served it (score_errors of scores);
//   - the signal queue loses nothing: sent = completed + dead-lettered +
//     still queued (lost_signals);
//   - an agent brought back converges on its desired state
//     (max_recovery_s, the longest time from restart to converged).
//
// Final line:
//
//	bench=chaos kills=<> releases=<> completed=<> stuck=0 duplicate_steps=0 revision_regressions=0 score_errors=<> lost_signals=0 max_recovery_s=<>
//
// With -fleet-sites N, N more sites run their agents in one process of
// their own (fleet.go), killed and restarted whole as the kind fleet; the
// final line gains fleet_sites=<N>.
//
// With -store postgres (`make chaos-store`) the gateway runs as -replicas
// processes on one PostgreSQL server behind a balancer (store.go); the
// chaos kills one replica at a time and also restarts PostgreSQL, and the
// final line gains store=postgres replicas=<> store_restarts=<>.
//
// The exit status is 1 when an invariant with a 0 above is broken.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

const modelName = "bearing-failure"

type options struct {
	bin            string // the modelfleet binary
	temporal       string
	sites          int
	releases       int
	killsEach      int // at least this many kills of each kind of process
	interval       time.Duration
	releaseTimeout time.Duration
	maxDuration    time.Duration
	example        string
	dir            string
	keep           bool
	seed           uint64
	// store is bbolt (one gateway) or postgres: replicas gateways on one
	// PostgreSQL server (pg, started by the run unless given), behind a
	// balancer; the chaos then also restarts PostgreSQL.
	store    string
	replicas int
	pg       *pgtest.Server
	// auth runs the stack with authentication on (trust.go): TLS, OIDC
	// tokens, sites enrolled with join tokens talking mTLS, signed
	// releases pinned at the sites, controls through the gateway.
	auth bool
	// diskFull fills the last site's disk (a tmpfs of its own) before a
	// release (disk.go); needs root with CAP_SYS_ADMIN, else skipped.
	diskFull bool
	// workloads runs `modelfleet workload run` per site on an MQTT broker
	// the run hosts, and kills it too (workloads.go).
	workloads bool
	// fleetSites more sites whose agents share one process (fleet.go),
	// heartbeating every fleetHeartbeat; killed and restarted whole.
	fleetSites     int
	fleetHeartbeat time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == fleetCommand {
		os.Exit(fleetMain(os.Args[2:]))
	}
	var o options
	flag.StringVar(&o.bin, "modelfleet", "bin/modelfleet", "the modelfleet binary whose processes are killed")
	flag.StringVar(&o.temporal, "temporal", "", "Temporal CLI (default: app.FindTemporal)")
	flag.IntVar(&o.sites, "sites", 4, "edge agents (the first is the canary)")
	flag.IntVar(&o.releases, "releases", 6, "releases at least; more run until every kind of process was killed -kills times")
	flag.IntVar(&o.killsEach, "kills", 10, "SIGKILLs of each kind of process (gateway, worker, temporal, agent) at least")
	flag.DurationVar(&o.interval, "interval", 3*time.Second, "mean time between two chaos actions")
	flag.DurationVar(&o.releaseTimeout, "release-timeout", 4*time.Minute, "a release not terminal after this long is stuck")
	flag.DurationVar(&o.maxDuration, "max-duration", 30*time.Minute, "stop starting releases after this long")
	flag.StringVar(&o.example, "example", "examples/bearing-failure", "the example model's folder")
	flag.StringVar(&o.dir, "dir", "", "parent of the run's data dir (default: the system temp dir)")
	flag.BoolVar(&o.keep, "keep", false, "keep the data dir (every process's log is there)")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed of the chaos schedule (0: from the clock; printed)")
	flag.StringVar(&o.store, "store", "bbolt", "the gateway's store: bbolt (one gateway), or postgres (-replicas gateways on one PostgreSQL this run starts, behind a balancer;\nthe chaos then kills replicas and restarts PostgreSQL too; Debian's postgresql)")
	flag.IntVar(&o.replicas, "replicas", 3, "gateway replicas with -store postgres")
	flag.BoolVar(&o.auth, "auth", true, "authentication on, as production runs: the gateway on TLS verifying OIDC tokens (an issuer the run hosts), agents enrolled\nwith join tokens (modelfleet site enroll) on mTLS, releases signed and the keys pinned at the sites, gates approved with the CLI;\nwith -store postgres, the replicas share one --pki-dir and their enrolments live in the database")
	flag.BoolVar(&o.diskFull, "disk-full", true, "fill the last site's disk (a tmpfs the run mounts: root with CAP_SYS_ADMIN, else skipped) before a release:\nthe step must fail there with ENOSPC, count in the wave's failure budget, and the site converge once space is freed")
	flag.BoolVar(&o.workloads, "workloads", true, "run `modelfleet workload run` per site (its own process) on an MQTT broker the run hosts, fed by a simulated line, and SIGKILL it too:\nevery reading must get a decision or a dead letter, duplicates only across a kill (at-least-once)")
	flag.IntVar(&o.fleetSites, "fleet-sites", 0, "N more sites, their real edge agents hosted in one process of their own (this binary's hidden "+fleetCommand+" command), so a\nthousand sites fit: enrolled with join tokens (-auth), in the releases' waves (1% canaries), observed as the others; the chaos SIGKILLs and\nrestarts that process too (kind fleet). The process agents (-sites) stay as they are.")
	flag.DurationVar(&o.fleetHeartbeat, "fleet-heartbeat", agent.DefaultHeartbeat, "the fleet's agents' heartbeat (also their long-poll wait)")
	flag.Parse()
	if o.store == "postgres" {
		srv, err := pgtest.Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		defer srv.Stop()
		o.pg = srv
	}
	if o.temporal == "" {
		bin, err := app.FindTemporal()
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(2)
		}
		o.temporal = bin
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	r, err := run(ctx, o, os.Stdout)
	stop()
	if err == nil {
		err = r.broken()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		if o.pg != nil {
			o.pg.Stop()
		}
		os.Exit(1)
	}
}

// report is the run's figures.
type report struct {
	kills          map[string]int64
	releases       int
	completed      int
	stuck          int
	outcomes       map[string]int
	duplicateSteps int64
	regressions    int64
	scores         int64
	scoreErrors    int64
	signalsSent    int64
	lostSignals    int64
	maxRecovery    time.Duration
	unrecovered    int // agents that did not converge after coming back
	corruptions    int
	offline        int
	approvals      int64
	auth           bool
	enrolments     int64      // sites enrolled with a join token (once each)
	reenrolled     int        // sites whose certificate changed: restarted without their identity
	signedModels   int        // versions stored at the sites at the end, each with its signed statement
	unsigned       int        // ... without one
	disk           *diskFault // nil without -disk-full
	workloads      *workloadFigures
	store          string // "" for bbolt
	replicas       int
	storeRestarts  int64
	fleetSites     int // sites hosted in the fleet process (-fleet-sites)
	// balancerAcceptErrors counts the balancer's accept errors (retried).
	balancerAcceptErrors int64
}

func (r report) totalKills() int64 {
	var n int64
	for _, k := range r.kills {
		n += k
	}
	return n
}

func (r report) line() string {
	l := fmt.Sprintf("bench=chaos kills=%d releases=%d completed=%d stuck=%d duplicate_steps=%d revision_regressions=%d score_errors=%d lost_signals=%d max_recovery_s=%.1f",
		r.totalKills(), r.releases, r.completed, r.stuck, r.duplicateSteps, r.regressions, r.scoreErrors, r.lostSignals, r.maxRecovery.Seconds())
	if r.auth {
		l += fmt.Sprintf(" auth=on enrolments=%d reenrolled=%d unsigned=%d", r.enrolments, r.reenrolled, r.unsigned)
	}
	if d := r.disk; d != nil {
		switch {
		case d.skipped != "":
			l += " disk_full=skipped"
		case d.exercised:
			l += fmt.Sprintf(" disk_full=failed_enospc disk_recovery_s=%.1f", d.recovery.Seconds())
		default:
			l += " disk_full=not_reached"
		}
	}
	if f := r.workloads; f != nil {
		l += fmt.Sprintf(" workload_readings=%d workload_decisions=%d workload_dead_letters=%d workload_lost=%d workload_duplicates=%d workload_extra_duplicates=%d workload_resumed=%d",
			f.published, f.decisions, f.deadLetters, f.lost, f.duplicates, f.extra, f.resumed)
	}
	if r.store != "" {
		l += fmt.Sprintf(" store=%s replicas=%d store_restarts=%d", r.store, r.replicas, r.storeRestarts)
	}
	if r.fleetSites > 0 {
		l += fmt.Sprintf(" fleet_sites=%d", r.fleetSites)
	}
	return l
}

func (r report) print(w io.Writer) {
	fmt.Fprintf(w, "kills by kind: %v; agents taken offline: %d; model files corrupted: %d\n", r.kills, r.offline, r.corruptions)
	fmt.Fprintf(w, "releases: %d started, %d terminal %v, %d stuck\n", r.releases, r.completed, r.outcomes, r.stuck)
	fmt.Fprintf(w, "gates approved: %d", r.approvals)
	if r.auth {
		fmt.Fprintf(w, " (modelfleet release approve, signed by the gateway); sites enrolled with a join token: %d, restarted from their identity on disk: all but %d; versions stored with a signed statement: %d of %d", r.enrolments, r.reenrolled, r.signedModels-r.unsigned, r.signedModels)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "scores while up: %d, failed %d; signals sent %d, lost %d; agents not converged after return: %d\n", r.scores, r.scoreErrors, r.signalsSent, r.lostSignals, r.unrecovered)
	if d := r.disk; d != nil {
		switch {
		case d.skipped != "":
			fmt.Fprintf(w, "disk full: skipped: %s\n", d.skipped)
		case d.exercised:
			fmt.Fprintf(w, "disk full: %s's disk full at release %s: the step failed there with %q, its wave counted %d failed (budget %d), it kept its previous version (also restarted on the full disk: %v) and converged %.1fs after the disk was freed\n",
				d.site.id, d.release, d.reason, d.failed, d.budget, d.restarted, d.recovery.Seconds())
		}
	}
	if f := r.workloads; f != nil {
		fmt.Fprintf(w, "workload runners: %d readings acknowledged by the broker, %d decisions and %d dead letters; lost %d, decided again across a kill %d, otherwise %d; decided after their runner came back: %d\n",
			f.published, f.decisions, f.deadLetters, f.lost, f.duplicates, f.extra, f.resumed)
		fmt.Fprintf(w, "workload diagnostics: lost with an outcome the broker accepted %d; in flight on the broker at the end %d to the runners, %d to the observer; broker dropped %d, inflight-dropped %d, accept errors retried %d (balancer %d); observer connection lost %d times; decided again across a runner's lost connection (no kill) %d\n",
			f.lostAtBroker, f.backlog, f.observerBacklog, f.brokerDropped, f.inflightDropped, f.acceptErrors, r.balancerAcceptErrors, f.observerDown, f.acrossDrop)
	}
	fmt.Fprintln(w, r.line())
}

// broken names the invariants the run broke.
func (r report) broken() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(r.stuck > 0, "%d releases stuck (not terminal within the timeout)", r.stuck)
	check(r.completed != r.releases, "%d of %d releases ended", r.completed, r.releases)
	check(r.duplicateSteps > 0, "%d desired-state revisions seen with two contents", r.duplicateSteps)
	check(r.regressions > 0, "%d desired-state revisions went backwards", r.regressions)
	check(r.lostSignals != 0, "%d signal messages lost", r.lostSignals)
	check(r.unsigned > 0, "%d versions stored at sites without a signed statement", r.unsigned)
	check(r.reenrolled > 0, "%d sites' certificates changed since enrolment", r.reenrolled)
	if d := r.disk; d != nil && d.skipped == "" {
		check(!d.exercised, "the full disk of %s was never reached by a release step (or not with ENOSPC)", d.site.id)
		for _, p := range d.problems {
			check(true, "disk full: %s", p)
		}
	}
	if f := r.workloads; f != nil {
		check(f.lost > 0, "%d of %d readings got no decision nor dead letter", f.lost, f.published)
		check(f.extra > 0, "%d readings decided twice with no kill of their runner between", f.extra)
		check(f.published == 0, "no reading was published to the workload runners")
		check(r.kills[killWorkload] > 0 && f.resumed == 0, "no reading published while a runner was down was decided after it came back")
	}
	check(r.unrecovered > 0, "%d agents did not converge after coming back", r.unrecovered)
	return errors.Join(errs...)
}
