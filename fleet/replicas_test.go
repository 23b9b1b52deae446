package fleet_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/fleet/fleettest"
	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

// release is what one release did: the sites whose lease it took at its
// first step, and how many of its steps it applied to them.
type release struct {
	name     string
	acquired []string
	steps    int
}

var weights = []int{10, 50, 100}

// runRelease steps a release through weights on sites, retrying a step the
// database failed (a step is idempotent), and finishes it. stop, when
// closed, ends it between two steps, leases held: its replica died.
func runRelease(ctx context.Context, d *fleet.Directory, name, version string, sites []string, stop <-chan struct{}) (release, error) {
	r := release{name: name}
	for i, w := range weights {
		select {
		case <-stop:
			return r, nil
		default:
		}
		todo := sites
		if i > 0 {
			todo = r.acquired
		}
		var res modelfleet.StepResult
		var err error
		for try := 0; ; try++ {
			res, err = d.Step(modelfleet.StepRequest{Release: name, Model: "m", New: fleettest.Version(version, w), Sites: todo})
			if err == nil || try == 200 || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond) // the database restarting
		}
		if err != nil {
			return r, fmt.Errorf("%s step %d%%: %w", name, w, err)
		}
		if i == 0 {
			held := map[string]bool{}
			for _, c := range res.Conflicts {
				held[c.Site] = true
			}
			for _, s := range sites {
				if !held[s] {
					r.acquired = append(r.acquired, s)
				}
			}
		} else if len(res.Conflicts) > 0 {
			return r, fmt.Errorf("%s lost its lease: %+v", name, res.Conflicts)
		}
		r.steps++
	}
	for try := 0; ; try++ {
		_, err := d.Finish(name, "m", r.acquired)
		if err == nil {
			return r, nil
		}
		if try == 200 {
			return r, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Three gateway replicas on one PostgreSQL release to the same sites at
// once; one replica dies mid-rollout, then PostgreSQL restarts. No step is
// lost or applied twice (each site's revision is exactly the number of
// steps applied to it), and no long poll ever sees a revision go back.
func TestReplicasStepConcurrentlyThroughFaults(t *testing.T) {
	srv := pgtest.NeedServer(t)
	dsn := srv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var pools []*pgxpool.Pool
	var dirs []*fleet.Directory
	for range 3 {
		p, err := pgdb.Open(ctx, dsn) // three replicas migrating at once: the advisory lock
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, p)
		d, err := fleet.OpenPostgres(p, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	defer func() {
		for i := range dirs {
			dirs[i].Close()
			pools[i].Close()
		}
	}()
	var sites []string
	for i := range 12 {
		sites = append(sites, fmt.Sprintf("site-%02d", i))
	}
	for _, s := range sites {
		if _, err := dirs[0].Put(modelfleet.Site{ID: s, TaskQueue: modelfleet.SiteTaskQueue(s)}); err != nil {
			t.Fatal(err)
		}
	}
	// Every site serves version 0 before: each later step changes it.
	if _, err := runRelease(ctx, dirs[0], "initial", "0", sites, nil); err != nil {
		t.Fatal(err)
	}

	// Agents long-poll replica 2 (which survives) and check their revision
	// never goes back.
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	backwards := make(chan string, len(sites))
	for _, s := range sites[:4] {
		watchers.Go(func() {
			var last int64
			for watchCtx.Err() == nil {
				pctx, c := context.WithTimeout(watchCtx, time.Second)
				ds, err := dirs[2].Desired(pctx, s, last)
				c()
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if ds.Revision < last {
					backwards <- fmt.Sprintf("%s: revision %d after %d", s, ds.Revision, last)
				}
				last = ds.Revision
			}
		})
	}

	kill := make(chan struct{})
	restarted := make(chan error, 1)
	var mu sync.Mutex
	var done []release
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for rep := range 3 {
		wg.Go(func() {
			for n := range 4 {
				name := fmt.Sprintf("rep%d-rel%d", rep, n)
				var stop <-chan struct{}
				if rep == 1 {
					stop = kill
				}
				r, err := runRelease(ctx, dirs[rep], name, strconv.Itoa(rep*10+n+1), sites, stop)
				mu.Lock()
				done = append(done, r)
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				if rep == 1 && r.steps < len(weights) {
					// Replica 1 died holding its leases: its connections go
					// without a goodbye.
					dirs[1].Close()
					pools[1].Reset()
					return
				}
				if rep == 0 && n == 0 {
					close(kill)
				}
				if rep == 0 && n == 1 {
					restarted <- srv.Restart()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
	stopWatch()
	watchers.Wait()
	close(backwards)
	for b := range backwards {
		t.Error("revision went backwards:", b)
	}

	want := map[string]int64{}
	for _, s := range sites {
		want[s] = 1 // the initial release: 100% at once
	}
	for _, r := range done {
		for _, s := range r.acquired {
			want[s] += int64(r.steps)
		}
	}
	for _, s := range sites {
		ds, err := dirs[0].Desired(ctx, s, -1)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Revision != want[s] {
			t.Errorf("%s: revision %d, want %d (steps applied to it): a step was lost or applied twice", s, ds.Revision, want[s])
		}
	}
	if len(done) < 9 {
		t.Errorf("only %d releases ran", len(done))
	}
}
