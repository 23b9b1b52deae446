package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"

	"github.com/modelfleet/modelfleet/edge"
)

// EndpointsFile, in the embedded stack's data dir, says where every part of
// the running stack listens (Endpoints as JSON). It is rewritten on every
// start, so with EphemeralPorts a test or script reads the ports back from
// it instead of choosing them first.
const EndpointsFile = "endpoints.json"

// Endpoints is where the embedded stack's parts listen.
type Endpoints struct {
	Temporal   string          `json:"temporal"`   // frontend host:port
	TemporalUI string          `json:"temporalUI"` // URL
	Gateway    string          `json:"gateway"`    // URL
	Dashboard  string          `json:"dashboard"`  // URL (sign in with a token)
	Registry   string          `json:"registry"`   // URL
	MQTT       string          `json:"mqtt,omitempty"`
	Sites      []SiteEndpoints `json:"sites"`
}

// SiteEndpoints is where one simulated site's parts listen.
type SiteEndpoints struct {
	ID        string `json:"id"`
	Router    string `json:"router"`              // URL
	Simulator string `json:"simulator,omitempty"` // URL of the line simulator's control API
	Workload  string `json:"workload,omitempty"`  // URL of the workload supervisor's API
}

// Endpoints reports where the running stack listens.
func (d *Dev) Endpoints() Endpoints {
	e := Endpoints{Temporal: d.Temporal.Address, TemporalUI: d.Temporal.UIURL, Gateway: d.Gateway.URL(), Dashboard: d.Gateway.URL() + "/ui/", Registry: d.RegistryURL}
	if d.factory != nil {
		e.MQTT = d.factory.broker.URL()
	}
	for i, s := range d.Sites {
		se := SiteEndpoints{ID: s.Record().ID, Router: s.Record().RouterURL}
		if d.factory != nil {
			se.Simulator, se.Workload = d.factory.lines[i], d.factory.works[i]
		}
		e.Sites = append(e.Sites, se)
	}
	return e
}

// writeEndpoints replaces path atomically, so a reader never sees half.
func writeEndpoints(path string, e Endpoints) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return edge.WriteFileAtomic(path, append(b, '\n'))
}

// listenAt is the loopback address of the i-th listener of a run starting
// at base; base 0 lets the kernel pick a free port.
func listenAt(base, i int) string {
	if base == 0 {
		return "127.0.0.1:0"
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))
}

// startDevTemporal starts the dev server on the configured ports or, with
// EphemeralPorts, on free ones: the Temporal CLI cannot take port 0, so
// the ports are found just before it starts and, should another process
// take one in between (the server then exits at once), found again.
func startDevTemporal(ctx context.Context, cfg DevConfig, log *slog.Logger) (*TemporalServer, error) {
	o := TemporalOptions{
		Binary: cfg.TemporalBinary, DataDir: filepath.Join(cfg.DataDir, "temporal"),
		Port: cfg.TemporalPort, UIPort: cfg.UIPort, Logger: log,
	}
	if !cfg.EphemeralPorts {
		return StartTemporal(ctx, o)
	}
	var err error
	for range 3 {
		ports, perr := freePorts(2)
		if perr != nil {
			return nil, perr
		}
		o.Port, o.UIPort = ports[0], ports[1]
		var s *TemporalServer
		if s, err = StartTemporal(ctx, o); err == nil {
			return s, nil
		}
		if !errors.Is(err, errExitedEarly) {
			return nil, err
		}
		log.Warn("temporal dev server exited at start; trying other ports", "error", err)
	}
	return nil, err
}

// freePorts asks the kernel for n free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
