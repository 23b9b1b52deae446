package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/modelfleet/modelfleet/agent"
	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/simulate"
	"github.com/modelfleet/modelfleet/workload"
)

// factory is the embedded stack's shop floor: an MQTT broker, and per site a
// line simulator publishing sensor data and the sample workload turning it
// into decisions through the site's router.
type factory struct {
	broker *workload.Broker
	lines  []string // simulator control URLs, by site
	works  []string // workload supervisor URLs, by site
	stop   []func()
}

// startFactory starts the broker on mqttAddr, and for each site a simulator
// (control API on simBase+i) and the sample workload (supervisor API on
// workBase+i). The workload starts once its site serves the model it calls,
// so a fresh stack does not dead-letter every reading before the first
// release.
func startFactory(ctx context.Context, dataDir, mqttAddr string, simBase, workBase int, sites []*agent.Site, log *slog.Logger) (*factory, error) {
	if err := os.MkdirAll(filepath.Join(dataDir, "mqtt"), 0o755); err != nil {
		return nil, err
	}
	b, err := workload.StartBroker(workload.BrokerConfig{Addr: mqttAddr, DataDir: filepath.Join(dataDir, "mqtt"), Logger: log.With("component", "mqtt")})
	if err != nil {
		return nil, fmt.Errorf("mqtt broker: %w", err)
	}
	f := &factory{broker: b}
	f.stop = append(f.stop, func() { b.Close() })
	prog := bearing.MustProgram()
	for i, s := range sites {
		site := s.Record().ID
		line, err := simulate.New(simulate.Config{Site: site, Broker: b.URL(), Rate: 10, Logger: log.With("component", "simulator", "site", site)})
		if err != nil {
			f.close()
			return nil, err
		}
		lsrv, err := httpjson.Listen(listenAt(simBase, i), line.Handler())
		if err != nil {
			f.close()
			return nil, fmt.Errorf("simulator %s: %w", site, err)
		}
		lsrv.Start(log, "simulator")
		// The hosted workload scores with the router's own key, so keying
		// the model for the line's other callers never cuts it off.
		sup := workload.NewSupervisor(workload.SupervisorConfig{Site: site, Broker: b.URL(), Router: s.Record().RouterURL, APIKey: s.Edge.Router().InternalKey(), Logger: log.With("component", "workload", "site", site)})
		wsrv, err := httpjson.Listen(listenAt(workBase, i), sup.Handler())
		if err != nil {
			lsrv.Close()
			f.close()
			return nil, fmt.Errorf("workload %s: %w", site, err)
		}
		wsrv.Start(log, "workload")
		f.lines = append(f.lines, lsrv.URL())
		f.works = append(f.works, wsrv.URL())
		f.stop = append(f.stop, lsrv.Close, wsrv.Close)
		go func() { _ = line.Run(ctx) }()
		// Releases that carry a workload version swap it in through the
		// site's pull loop (agent/workloads.go); until one does, the site
		// runs the version the agent is built with.
		go func() {
			if err := s.RunWorkload(ctx, bearing.Code(), prog, sup); err != nil {
				log.Warn("workload stopped", "site", site, "error", err)
			}
		}()
	}
	return f, nil
}

func (f *factory) close() {
	for i := len(f.stop) - 1; i >= 0; i-- {
		f.stop[i]()
	}
}
