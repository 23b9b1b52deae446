package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
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
// The stacks run in two passes, the second in reverse order (plain,
// signed, secure, secure, signed, plain). Each stack rolls out rounds versions in turn (each a new artifact, so
// every site downloads, verifies and loads each), and the medians compare:
// verify_overhead_ratio = signed / plain, auth_overhead_ratio = secure /
// plain. The sites' data dirs are on /dev/shm by default
// (-overhead-sites-dir): on one shared disk, the signed stacks' extra
// fsync per site and version (the statement kept beside the model) queues
// behind 999 others', which a fleet of sites with disks of their own never
// does; measured on the shared disk, the ratios were 1.10–1.31 (verify) and
// 1.38–1.63 (auth), and a profile of the rollouts put most of the
// difference in the sites' file system calls.
type overhead struct {
	sites int
	runs  map[variant][]time.Duration
}

var variants = []variant{plain, signed, secure}

func (ov overhead) median(v variant) time.Duration {
	r := slices.Clone(ov.runs[v])
	if len(r) == 0 {
		return 0
	}
	slices.Sort(r)
	return r[len(r)/2]
}

func (ov overhead) ratio(v variant) float64 {
	base := ov.median(plain)
	if base == 0 {
		return 0
	}
	return float64(ov.median(v)) / float64(base)
}

func (ov overhead) print(w io.Writer) {
	for _, v := range variants {
		var s []string
		for _, d := range ov.runs[v] {
			s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
		}
		fmt.Fprintf(w, "overhead sites=%d variant=%s rollouts_s=%s median_s=%.2f ratio=%.3f\n", ov.sites, v, strings.Join(s, ","), ov.median(v).Seconds(), ov.ratio(v))
	}
	check := func(what string, got, limit float64) {
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
		return "auth_overhead_ratio=- verify_overhead_ratio=-"
	}
	return fmt.Sprintf("auth_overhead_ratio=%.3f verify_overhead_ratio=%.3f", ov.ratio(secure), ov.ratio(signed))
}

func measureOverhead(ctx context.Context, o options, n int, fdLimit uint64, ex example, log *slog.Logger, out io.Writer) (*overhead, error) {
	ov := &overhead{sites: n, runs: map[variant][]time.Duration{}}
	o.transport = "tcp" // the secure stack's mTLS runs over real sockets; so do the others, to compare
	if o.overheadSitesDir != "" {
		o.sitesDir = o.overheadSitesDir
	}
	// Two passes, the second in reverse order, so that a machine getting
	// slower or faster over the run weighs on every variant alike.
	rev := slices.Clone(variants)
	slices.Reverse(rev)
	for pass, v := range slices.Concat(variants, rev) {
		if len(o.overheadVariants) > 0 && !slices.Contains(o.overheadVariants, string(v)) {
			continue
		}
		_, err := measureOn(ctx, o, n, fdLimit, ex, log, out, stackConfig{variant: v, replicas: 1}, func(b *bench, ctx context.Context, _ *result) error {
			if err := b.putPolicy(wavesYAML); err != nil {
				return err
			}
			if o.overheadProfile != "" {
				// The rollouts alone, not the stack's start-up.
				f, err := os.Create(fmt.Sprintf("%s.%s.%d", o.overheadProfile, v, pass/len(variants)+1))
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			for k := 1; k <= o.overheadRounds; k++ {
				// A new artifact each round (trailing newlines, which the
				// LightGBM text parser ignores), so each round downloads.
				artifact := append(bytes.Clone(b.ex.artifact), bytes.Repeat([]byte{'\n'}, k)...)
				d, _, err := b.rolloutVersion(ctx, strconv.Itoa(k), artifact)
				if err != nil {
					return err
				}
				ov.runs[v] = append(ov.runs[v], d)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("overhead, %s stack of %d sites: %w", v, n, err)
		}
	}
	return ov, nil
}
