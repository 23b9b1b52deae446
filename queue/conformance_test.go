package queue_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/queue/queuetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestConformanceEmbedded(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, opts queue.Options) queue.Store {
		q, err := queue.Open(filepath.Join(t.TempDir(), opts.Name+".db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	})
}

func TestConformancePostgres(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, opts queue.Options) queue.Store {
		pool, err := pgdb.Open(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		q, err := queue.OpenPostgres(pool, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close(); pool.Close() })
		return q
	})
}
