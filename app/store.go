package app

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/queue"
)

// openStores opens the fleet directory and, unless the monitor consumes
// Service Bus, the embedded signal queue: in bbolt files under the data
// directory by default (one replica), or in the PostgreSQL database
// cfg.Store names, which any number of replicas share.
func (g *Gateway) openStores(cfg GatewayConfig, log *slog.Logger) error {
	var err error
	if cfg.Store == "" {
		if g.Directory, err = fleet.Open(filepath.Clean(cfg.DataDir)); err != nil {
			return err
		}
		if cfg.Signals != nil {
			return nil
		}
		if err := os.MkdirAll(cfg.QueueDir, 0o755); err != nil {
			return err
		}
		q, err := queue.Open(filepath.Join(cfg.QueueDir, agent.SignalQueue+".db"), queue.Options{Name: agent.SignalQueue, Logger: log.With("component", "queue")})
		if err != nil {
			return err
		}
		g.Signals = q
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // migrations wait for another replica's
	defer cancel()
	if g.pool, err = pgdb.OpenWith(ctx, cfg.Store, pgdb.Options{Credential: cfg.StoreCredential}); err != nil {
		return err
	}
	// The artifact mirror is content-addressed files: with several
	// replicas, DataDir/artifacts must be a volume they share.
	if g.Directory, err = fleet.OpenPostgres(g.pool, filepath.Join(filepath.Clean(cfg.DataDir), "artifacts")); err != nil {
		return err
	}
	log.Info("fleet state on PostgreSQL", "host", g.pool.Config().ConnConfig.Host, "database", g.pool.Config().ConnConfig.Database, "entra", cfg.StoreCredential != nil)
	if cfg.Signals != nil {
		return nil
	}
	q, err := queue.OpenPostgres(g.pool, queue.Options{Name: agent.SignalQueue, Logger: log.With("component", "queue")})
	if err != nil {
		return err
	}
	g.Signals = q
	return nil
}

// readyz answers 200 when the gateway's store answers, 503 otherwise: a
// replica that lost its database leaves the load balancer's rotation.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := g.Directory.Ping(ctx); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// closeStores closes what openStores opened, the pool last.
func (g *Gateway) closeStores() error {
	if g.Signals != nil {
		g.Signals.Close()
	}
	var err error
	if g.Directory != nil {
		err = g.Directory.Close()
	}
	if g.pool != nil {
		g.pool.Close()
	}
	return err
}
