package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/modelfleet/modelfleet/internal/pgtest"
)

// runPostgres measures each size twice on fresh stacks: on bbolt (one
// gateway; not with -no-bbolt), then with o.replicas gateways on one PostgreSQL server this run
// starts (initdb into a temporary directory, as the tests do). The final
// line compares the largest size that completed both:
//
//	store=postgres replicas=<N> sites=<> rollout_s=<> rollback_s=<> ratio_vs_bbolt=<rollout, postgres over bbolt>
func runPostgres(ctx context.Context, o options, fdLimit uint64, ex example, log *slog.Logger, out io.Writer) error {
	srv, err := pgtest.Start()
	if err != nil {
		return err
	}
	defer srv.Stop()
	type pair struct{ bolt, pg result }
	var pairs []pair
	var failed []error
	for _, n := range o.sites {
		var b result
		if !o.noBaseline {
			b, err = measure(ctx, o, n, fdLimit, ex, log, out, "", 1)
			if err != nil {
				failed = append(failed, fmt.Errorf("%d sites on bbolt: %w", n, err))
				continue
			}
		}
		dsn, err := srv.CreateDatabase(fmt.Sprintf("rollout_%d", n))
		if err != nil {
			return err
		}
		p, err := measure(ctx, o, n, fdLimit, ex, log, out, dsn, o.replicas)
		if err != nil {
			failed = append(failed, fmt.Errorf("%d sites on postgres: %w", n, err))
			continue
		}
		pairs = append(pairs, pair{b, p})
	}
	fmt.Fprintln(out)
	for _, err := range failed {
		fmt.Fprintf(out, "size FAILED %v\n", err)
	}
	if len(pairs) == 0 {
		return errors.Join(append(failed, errors.New("no size completed on both stores"))...)
	}
	for _, p := range pairs {
		if !o.noBaseline {
			fmt.Fprintln(out, "bbolt    ", p.bolt.line())
		}
		fmt.Fprintln(out, "postgres ", p.pg.line())
	}
	last := pairs[len(pairs)-1]
	if o.noBaseline {
		fmt.Fprintf(out, "store=postgres replicas=%d sites=%d rollout_s=%.2f rollback_s=%.2f (no bbolt run: -no-bbolt)\n",
			o.replicas, last.pg.sites, last.pg.rollout.Seconds(), last.pg.rollback.Seconds())
		return errors.Join(failed...)
	}
	fmt.Fprintf(out, "store=postgres replicas=%d sites=%d rollout_s=%.2f rollback_s=%.2f ratio_vs_bbolt=%.2f\n",
		o.replicas, last.pg.sites, last.pg.rollout.Seconds(), last.pg.rollback.Seconds(), last.pg.rollout.Seconds()/last.bolt.rollout.Seconds())
	return errors.Join(failed...)
}
