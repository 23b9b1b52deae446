package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
	"github.com/modelfleet/modelfleet/queue"
)

// Three replicas consume one queue on PostgreSQL: each message goes to
// one of them once, a send on one wakes a receiver waiting on another, and
// PostgreSQL restarting mid-way loses nothing.
func TestPostgresReplicasShareOneQueue(t *testing.T) {
	srv := pgtest.NeedServer(t)
	dsn := srv.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var qs []*queue.PostgresQueue
	for range 3 {
		pool, err := pgdb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		q, err := queue.OpenPostgres(pool, queue.Options{Name: "signals"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close(); pool.Close() })
		qs = append(qs, q)
	}

	// A receiver on replica 2 wakes when replica 0 sends (not by its poll).
	queue.PostgresPoll = 30 * time.Second
	defer func() { queue.PostgresPoll = 2 * time.Second }()
	got := make(chan string, 1)
	go func() {
		ds, err := qs[2].Receive(ctx, 1)
		if err != nil {
			got <- err.Error()
			return
		}
		qs[2].Complete(ctx, ds[0])
		got <- ds[0].ID
	}()
	time.Sleep(200 * time.Millisecond) // let it wait (not needed for correctness)
	start := time.Now()
	if err := qs[0].Send(ctx, queue.Message{ID: "wake", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if id := <-got; id != "wake" || time.Since(start) > 10*time.Second {
		t.Fatalf("cross-replica wake: got %q after %v", id, time.Since(start))
	}
	queue.PostgresPoll = 200 * time.Millisecond

	const n = 90
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for r, q := range qs {
		wg.Go(func() { // each replica sends a third and consumes what it can
			for i := range n / 3 {
				id := fmt.Sprintf("r%d-%02d", r, i)
				for try := 0; ; try++ {
					if err := q.Send(ctx, queue.Message{ID: id, Body: []byte(id)}); err == nil || try == 100 {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				done := len(seen) == n
				mu.Unlock()
				if done {
					return
				}
				rctx, c := context.WithTimeout(ctx, 500*time.Millisecond)
				ds, err := q.Receive(rctx, 5)
				c()
				if err != nil {
					continue
				}
				for _, d := range ds {
					if err := q.Complete(ctx, d); err != nil {
						continue // lost in the restart: delivered again
					}
					mu.Lock()
					seen[d.ID]++
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d of %d messages completed", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s completed %d times", id, c)
		}
	}
}
