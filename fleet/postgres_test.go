package fleet_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/fleet/fleettest"
	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pool opens a migrated pool on a new database of the shared server.
func pool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func openPostgres(t *testing.T, p *pgxpool.Pool) *fleet.Directory {
	t.Helper()
	d, err := fleet.OpenPostgres(p, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformancePostgres(t *testing.T) {
	fleettest.Run(t, func(t *testing.T) *fleet.Directory {
		return openPostgres(t, pool(t, pgtest.DSN(t)))
	})
}
