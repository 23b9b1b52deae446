package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet/edge"
)

// The cost of trust (issues 12 and 13). The same rollouts run on three
// fresh stacks of the same size, one after the other, over loopback TCP:
//
//   - plain: no authentication, versions unsigned;
//   - signed: the worker signs each validated version's release statement
//     and every site, its release keys pinned, verifies the statement
//     before it downloads and loads (and the statement is stored beside
//     the model);
//   - secure: signed, plus what `make run` runs: the gateway on TLS with
//     the embedded OIDC issuer, every site enrolled over the real
//     enrolment API and talking mTLS with its own certificate, the cloud
//     worker with a bearer token.
//
// The three stacks run side by side, each idle while another rolls out:
// round after round, each stack rolls out a new version (a new artifact, so
// every site downloads, verifies and loads it), the stacks taking turns in
// an order that rotates every round, after unmeasured warm-up rounds
// each. A ratio is the median over rounds of the stack's rollout time over
// the plain stack's in the same round: a machine getting slower or faster
// over the run (other work on it) weighs on both sides of each ratio alike,
// which two passes of whole stacks one after the other did not achieve
// (the plain stack's own median moved from 3.3 to 7.1 s between passes on
// a shared machine). verify_overhead_ratio is signed / plain,
// auth_overhead_ratio secure / plain. The sites' data dirs are on /dev/shm
// by default (-overhead-sites-dir): on one shared disk, the signed stacks'
// extra fsync per site and version (the statement kept beside the model)
// queues behind 999 others', which a fleet of sites with disks of their
// own never does; measured on the shared disk, the ratios were 1.10–1.31
// (verify) and 1.38–1.63 (auth), and a profile of the rollouts put most of
// the difference in the sites' file system calls. The stacks' own data
// (the gateway's store, Temporal's database) is on /dev/shm too
// (-overhead-dir): it is the same in the three stacks, so its commits are
// not what the comparison measures, and on one shared disk they queue
// behind each other's and the machine's other work (a plain rollout moved
// between 2.2 and 6.1 s from round to round with them there).
type overhead struct {
	sites  int
	runs   map[variant][]time.Duration
	allocs map[variant][]uint64 // bytes each rollout allocated
}

// rollout is one measured rollout: how long it took and how many bytes
// the process allocated meanwhile.
type rollout struct {
	took   time.Duration
	allocs uint64
}

// noGC runs a collection and turns the collector off until the returned
// func, which turns it back on and collects what was allocated meanwhile.
// A rollout runs so, without a collection of its own: the three stacks
// share this process's heap (1,000 sites' models each), a rollout
// allocates 657–912 MiB of it (measured), and whether it pays for one
// collection or two (each a tenth of its CPU time) depends on which side
// of the heap goal it ends, not on what it does: measured before, a signed
// stack allocating 3.5 % more than the plain one ran two collections per
// rollout where the plain one ran one or two. A fleet's sites each collect
// their own small heap, in proportion to what they allocate; the ratios
// compare the work, and what each stack allocated per rollout is printed
// beside them (alloc_ratio), the figure its collections would follow.
func noGC() (restore func()) {
	runtime.GC()
	prev := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(prev)
		runtime.GC()
	}
}

// warmups is how many unmeasured rounds each stack rolls out first: until
// every site's store keeps edge.DefaultKeepVersions versions and prunes
// one per install, and the shared heap has grown to hold three stacks'
// steady state. Before that, a rollout's writes and allocations land on
// memory the process never touched, and on a VM whose host takes freed
// memory back (free page reporting, as on the machine the figures were
// measured on) each such page faults to the host: writing 2 GB to a
// tmpfs took 3.0–5.4 s on fresh memory against 0.36 s on memory just
// freed. With one warm-up round, the first measured rounds' page faults
// went 22,000, 10,000, 14,000, 5,000, then under 4,000, and the rollout's
// system time 1.2 s down to 0.5 s, landing on whichever stack ran then
// (measured; each rollout's line prints both).
const warmups = edge.DefaultKeepVersions

var variants = []variant{plain, signed, secure}

func (ov overhead) median(v variant) time.Duration { return upperMedian(ov.runs[v]) }

func (ov overhead) medianAllocs(v variant) uint64 { return upperMedian(ov.allocs[v]) }

// upperMedian is the middle of s sorted, the upper one of two (zero for
// none).
func upperMedian[T cmp.Ordered](s []T) T {
	var zero T
	if len(s) == 0 {
		return zero
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}

// allocRatio is v's median allocation per rollout over the plain stack's.
func (ov overhead) allocRatio(v variant) float64 {
	if p := ov.medianAllocs(plain); p > 0 {
		return float64(ov.medianAllocs(v)) / float64(p)
	}
	return 0
}

// ratio is the median over rounds of v's rollout time over the plain
// stack's in the same round.
func (ov overhead) ratio(v variant) float64 {
	var r []float64
	for k, d := range ov.runs[v] {
		if k < len(ov.runs[plain]) && ov.runs[plain][k] > 0 {
			r = append(r, float64(d)/float64(ov.runs[plain][k]))
		}
	}
	if len(r) == 0 {
		return 0
	}
	slices.Sort(r)
	if len(r)%2 == 0 {
		return (r[len(r)/2-1] + r[len(r)/2]) / 2
	}
	return r[len(r)/2]
}

func (ov overhead) print(w io.Writer) {
	for _, v := range variants {
		var s []string
		for _, d := range ov.runs[v] {
			s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
		}
		fmt.Fprintf(w, "overhead sites=%d variant=%s rollouts_s=%s median_s=%.2f ratio=%.3f alloc_mib=%d alloc_ratio=%.3f\n", ov.sites, v, strings.Join(s, ","), ov.median(v).Seconds(), ov.ratio(v), ov.medianAllocs(v)>>20, ov.allocRatio(v))
	}
	check := func(what string, got, limit float64) {
		if got == 0 { // a stack left out (-overhead-variants)
			fmt.Fprintf(w, "  target %-34s not measured\n", what)
			return
		}
		verdict := "met"
		if got > limit {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  target %-34s %8.3f <= %g  %s\n", what, got, limit, verdict)
	}
	check("verify_overhead_ratio", ov.ratio(signed), 1.05)
	check("auth_overhead_ratio", ov.ratio(secure), 1.10)
}

// figures is the final line's part: "-" for what was not measured.
func (ov *overhead) figures() string {
	if ov == nil {
		return "auth_overhead_ratio=- verify_overhead_ratio=- auth_alloc_ratio=- verify_alloc_ratio=-"
	}
	f := func(r float64) string {
		if r == 0 { // a stack left out (-overhead-variants)
			return "-"
		}
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("auth_overhead_ratio=%s verify_overhead_ratio=%s auth_alloc_ratio=%s verify_alloc_ratio=%s",
		f(ov.ratio(secure)), f(ov.ratio(signed)), f(ov.allocRatio(secure)), f(ov.allocRatio(signed)))
}

func measureOverhead(ctx context.Context, o options, n int, fdLimit uint64, ex example, log *slog.Logger, out io.Writer) (*overhead, error) {
	ov := &overhead{sites: n, runs: map[variant][]time.Duration{}, allocs: map[variant][]uint64{}}
	o.transport = "tcp" // the secure stack's mTLS runs over real sockets; so do the others, to compare
	if o.overheadSitesDir != "" {
		o.sitesDir = o.overheadSitesDir
	}
	if o.overheadDir != "" {
		o.dir = o.overheadDir
	}
	var run []variant
	for _, v := range variants {
		if len(o.overheadVariants) == 0 || slices.Contains(o.overheadVariants, string(v)) {
			run = append(run, v)
		}
	}
	// Each stack in a goroutine of its own, rolling out a version when
	// asked (its round number; those below warmups are warm-ups) and
	// answering how long it took, until its channel closes.
	type stackRun struct {
		rounds chan int
		took   chan rollout
		done   chan error
	}
	stacks := map[variant]*stackRun{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, v := range run {
		st := &stackRun{rounds: make(chan int), took: make(chan rollout), done: make(chan error, 1)}
		stacks[v] = st
		go func() {
			_, err := measureOn(ctx, o, n, fdLimit, ex, log, out, stackConfig{variant: v, replicas: 1}, func(b *bench, ctx context.Context, _ *result) error {
				if err := b.putPolicy(wavesYAML); err != nil {
					return err
				}
				for k := range st.rounds {
					// A new artifact each round (trailing newlines, which
					// the LightGBM text parser ignores), so each round
					// downloads.
					artifact := append(bytes.Clone(b.ex.artifact), bytes.Repeat([]byte{'\n'}, k+1)...)
					// The rollout runs between two collections and
					// without one of its own (noGC): what it allocated
					// is counted instead.
					restore := noGC()
					stop, err := o.profileRollout(v, k)
					if err != nil {
						restore()
						return err
					}
					a0 := heapAllocs()
					d, _, err := b.rolloutVersion(ctx, strconv.Itoa(k+1), artifact)
					a1 := heapAllocs()
					stop()
					restore()
					if err != nil {
						return err
					}
					st.took <- rollout{d, a1 - a0}
				}
				return nil
			})
			st.done <- err
		}()
	}
	var err error
	for k := 0; k < warmups+o.overheadRounds && err == nil; k++ {
		for i := range run {
			v := run[(i+k)%len(run)]
			st := stacks[v]
			select {
			case st.rounds <- k:
			case e := <-st.done:
				err = fmt.Errorf("overhead, %s stack of %d sites: %w", v, n, cmp.Or(e, errors.New("ended early")))
			}
			if err != nil {
				break
			}
			select {
			case r := <-st.took:
				if k >= warmups {
					ov.runs[v] = append(ov.runs[v], r.took)
					ov.allocs[v] = append(ov.allocs[v], r.allocs)
				}
				fmt.Fprintf(out, "overhead round %d (%s): %s stack rolled out in %.2f s, allocating %d MiB\n", k, map[bool]string{true: "warm-up", false: "measured"}[k < warmups], v, r.took.Seconds(), r.allocs>>20)
			case e := <-st.done:
				err = fmt.Errorf("overhead, %s stack of %d sites: %w", v, n, cmp.Or(e, errors.New("ended early")))
			}
			if err != nil {
				break
			}
		}
	}
	for _, v := range run {
		close(stacks[v].rounds)
	}
	if err != nil {
		cancel()
	}
	for _, v := range run {
		select {
		case e := <-stacks[v].done:
			if e != nil && err == nil {
				err = fmt.Errorf("overhead, %s stack of %d sites: %w", v, n, e)
			}
		case <-time.After(2 * time.Minute):
			if err == nil {
				err = fmt.Errorf("overhead, %s stack of %d sites did not stop", v, n)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return ov, nil
}

// profileRollout starts a CPU profile of one measured rollout into
// <-overhead-cpuprofile>.<variant>.<round> (the rollouts alone: not the
// stacks' start-up, nor the warm-up), and returns what stops it. With
// -overhead-allocprofile it also writes the process's allocation profile
// before and after the rollout (<file>.<variant>.<round>.before, .after):
// their difference is what the rollout allocated, a figure that, unlike
// CPU time, does not depend on what else the machine runs.
func (o options) profileRollout(v variant, round int) (stop func(), err error) {
	if round == 0 {
		return func() {}, nil
	}
	allocs := func(suffix string) {
		if o.overheadAllocs == "" {
			return
		}
		f, err := os.Create(fmt.Sprintf("%s.%s.%d.%s", o.overheadAllocs, v, round, suffix))
		if err != nil {
			return
		}
		defer f.Close()
		// The profile is as of the last collection: one now, so that it
		// counts up to here (only when asked for: it takes a moment).
		runtime.GC()
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
	}
	allocs("before")
	if o.overheadProfile == "" {
		return func() { allocs("after") }, nil
	}
	f, err := os.Create(fmt.Sprintf("%s.%s.%d", o.overheadProfile, v, round))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close(); allocs("after") }, nil
}
