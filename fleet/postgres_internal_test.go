package fleet

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

// A replica's listener wakes a site another replica notified and records
// the revision announced, so its sweep does not wake the site again for
// it; the sweep wakes only the sites whose write it was not told of.
func TestPostgresNotifiedRevisionsAndSweep(t *testing.T) {
	defer func(p time.Duration) { PostgresPoll = p }(PostgresPoll)
	PostgresPoll = time.Hour // the test runs the sweep itself (sweepOnce)
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	writer := NewPostgresStore(pool) // another replica
	for _, s := range []string{"s1", "s2"} {
		if err := writer.PutSite(ctx, &modelfleet.Site{ID: s, TaskQueue: modelfleet.SiteTaskQueue(s)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var woken []string
	wake := func(site string) {
		mu.Lock()
		defer mu.Unlock()
		woken = append(woken, site)
	}
	// waitWoken waits for site's wake-up (the listener's), then forgets
	// every wake-up so far.
	waitWoken := func(site string) {
		t.Helper()
		for range 3000 {
			mu.Lock()
			found := slices.Contains(woken, site)
			if found {
				woken = nil
			}
			mu.Unlock()
			if found {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no wake-up of %q within 30 s", site)
	}
	st := NewPostgresStore(pool)
	st.Watch(wake)
	defer st.Close()
	waitWoken("") // listening, and the sweep's first read is in

	change := func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) { return true, nil }
	if _, _, err := writer.UpdateDesired(ctx, []string{"s1"}, change); err != nil {
		t.Fatal(err)
	}
	waitWoken("s1")
	// s2 changes behind the replicas' backs: no notification.
	if _, err := pool.Exec(ctx, `UPDATE fleet_desired SET revision = revision + 1 WHERE site = 's2'`); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{{"s2"}, nil} {
		mu.Lock()
		woken = nil
		mu.Unlock()
		if err := st.sweepOnce(ctx, wake); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := slices.Clone(woken)
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("sweep %d woke %q, want %q (s1's write was notified, s2's was not)", i+1, got, want)
		}
	}
}
