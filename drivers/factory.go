package drivers

import (
	"fmt"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers/amlarc"
	"github.com/modelfleet/modelfleet/drivers/gitops"
)

// Driver names, as a site's registration says them (modelfleet.Site.Driver).
const (
	Agent  = "agent"  // the default: the site's own agent pulls its desired state
	AMLArc = "amlarc" // Azure ML Kubernetes online endpoints on an Arc-connected cluster
	GitOps = "gitops" // manifests committed to a fleet repository that Flux applies
)

// Config holds each provider's configuration; a provider left nil is not
// available, and a site that names it is refused rather than ignored.
type Config struct {
	AMLArc *amlarc.Config
	GitOps *gitops.Config
}

// New returns the driver called name ("" is the agent).
func New(name string, cfg Config) (Driver, error) {
	switch name {
	case "", Agent:
		return Nop{}, nil
	case AMLArc:
		if cfg.AMLArc == nil {
			return nil, fmt.Errorf("drivers: %q is not configured", name)
		}
		d, err := amlarc.New(*cfg.AMLArc)
		if err != nil {
			return nil, err
		}
		return d, nil
	case GitOps:
		if cfg.GitOps == nil {
			return nil, fmt.Errorf("drivers: %q is not configured", name)
		}
		d, err := gitops.New(*cfg.GitOps)
		if err != nil {
			return nil, err
		}
		return d, nil
	default:
		return nil, fmt.Errorf("drivers: unknown driver %q (want %q, %q or %q)", name, Agent, AMLArc, GitOps)
	}
}

// NewSet returns every configured driver by name, the agent's included.
func NewSet(cfg Config) (map[string]Driver, error) {
	set := map[string]Driver{Agent: Nop{}}
	for name, on := range map[string]bool{AMLArc: cfg.AMLArc != nil, GitOps: cfg.GitOps != nil} {
		if !on {
			continue
		}
		d, err := New(name, cfg)
		if err != nil {
			return nil, err
		}
		set[name] = d
	}
	return set, nil
}

// NameOf is the driver a site uses: its registration's, or the agent.
func NameOf(s modelfleet.Site) string {
	if s.Driver == "" {
		return Agent
	}
	return s.Driver
}
