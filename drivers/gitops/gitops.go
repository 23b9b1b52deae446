// Package gitops is the "gitops" driver: each site's desired state is
// rendered as Kubernetes manifests (the edge agent's Deployment and Service
// in a shared base, and per cluster a kustomize overlay with the desired
// state as a ConfigMap) and committed to a fleet repository that Flux (or
// Argo CD) applies. One commit per change, touching only its cluster's
// directory, pushed to the branch the cluster follows, or to a branch of its
// own for a pull request.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/modelfleet/modelfleet"
)

// Name is the driver's name in a site's registration.
const Name = "gitops"

// Config says where the fleet repository is and what the agent looks like.
type Config struct {
	URL    string               // the fleet repository's remote (https, ssh, or a path)
	Branch string               // the branch clusters follow (default "main")
	Auth   transport.AuthMethod // nil for anonymous or local remotes
	// PullRequests pushes each change to modelfleet/<site>/r<revision>
	// instead of Branch; a site converges once that content is on Branch
	// (someone merged it). Opening the pull request is left to the host's
	// automation (a GitHub or Azure Repos rule on the branch prefix).
	PullRequests bool
	// AuthorName and AuthorEmail sign the commits (default "modelfleet").
	AuthorName, AuthorEmail string
	// SignKey, if set, signs every commit (OpenPGP, LoadSigningKey), so
	// that Flux's GitRepository verification (spec.verify) accepts only
	// commits this driver made. Nil: commits are unsigned.
	SignKey *openpgp.Entity

	Image      string // the agent's image (default "modelfleet:latest")
	Namespace  string // where the agent runs (default "modelfleet")
	GatewayURL string // the agent's gateway, for heartbeats and signals
	// CPURequest, MemoryRequest and MemoryLimit size the agent; the defaults
	// come from its measured footprint (deploy/README.md).
	CPURequest, MemoryRequest, MemoryLimit string
	// MQTTURL is the site's MQTT broker (mqtt://host:port) as the cluster's
	// pods reach it: a workload's Deployment reads factory data there. A
	// site whose desired state names a workload does not render without it.
	MQTTURL string
	// WorkloadKeySecret, if set, is a Secret in the agent's namespace whose
	// "key" is the router API key workloads present (mounted, never in an
	// environment variable or argument).
	WorkloadKeySecret string

	// Describe, if set, says why a change was made in its commit message.
	// By default that comes from the desired state: each model's release,
	// wave and approver.
	Describe func(site string, ds modelfleet.Desired) Change
	// MaxAttempts bounds fetch-reapply-push rounds when other writers keep
	// winning the race (default 10).
	MaxAttempts int
	Log         *slog.Logger
}

// Change is what a commit message says about why the change was made.
type Change struct {
	Release, Wave, ApprovedBy string
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Branch, "main")
	def(&c.AuthorName, "modelfleet")
	def(&c.AuthorEmail, "modelfleet@localhost")
	def(&c.Image, "modelfleet:latest")
	def(&c.Namespace, "modelfleet")
	def(&c.GatewayURL, "http://modelfleet-gateway.modelfleet:8080")
	def(&c.CPURequest, "50m")
	def(&c.MemoryRequest, "64Mi")
	def(&c.MemoryLimit, "256Mi")
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Driver commits to one fleet repository. It keeps one in-memory clone,
// used by one Apply at a time; other processes writing the same repository
// are handled by fetch, re-apply and retry.
type Driver struct {
	cfg        Config
	mu         sync.Mutex
	repo       *git.Repository
	beforePush func() // tests: another writer pushes first
}

// New checks cfg.
func New(cfg Config) (*Driver, error) {
	if cfg.URL == "" {
		return nil, errors.New("gitops: the fleet repository url is required")
	}
	return &Driver{cfg: cfg.withDefaults()}, nil
}

// Name returns "gitops".
func (d *Driver) Name() string { return Name }

// Plan checks that every site's desired state at the release's peak renders,
// and fits in a ConfigMap (1 MiB): beyond that the cluster would refuse it
// long after the commit looked fine.
func (d *Driver) Plan(_ context.Context, sites []modelfleet.Site, peak map[string]modelfleet.Desired) error {
	for _, s := range sites {
		ds := peak[s.ID]
		ds.Site = s.ID
		if _, err := Render(d.cfg, s, ds); err != nil {
			if modelfleet.ErrorCode(err) == modelfleet.EINVALID {
				return err
			}
			return modelfleet.Errorf(modelfleet.EINVALID, "site %q: %v", s.ID, err)
		}
	}
	return nil
}

// Apply renders the site's desired state and commits it. The Actual says the
// change is on the branch the cluster follows; what the agent then loads
// comes back through its own heartbeat and signals.
func (d *Driver) Apply(ctx context.Context, site modelfleet.Site, ds modelfleet.Desired) (modelfleet.Actual, error) {
	files, err := Render(d.cfg, site, ds)
	if err != nil {
		return failed(site.ID, ds, err), nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.commit(ctx, site.ID, ds, files); err != nil {
		return modelfleet.Actual{}, redactErr(fmt.Errorf("gitops: site %q: %w", site.ID, err), d.cfg.URL)
	}
	return served(site.ID, ds), nil
}

func served(site string, ds modelfleet.Desired) modelfleet.Actual {
	a := modelfleet.Actual{Site: site, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{}}
	for name, dm := range ds.Models {
		am := modelfleet.ActualModel{Versions: []modelfleet.ServedVersion{}}
		for _, v := range dm.Versions {
			am.Versions = append(am.Versions, modelfleet.ServedVersion{Version: v.Version, Digest: v.Digest, Weight: v.Weight})
		}
		a.Models[name] = am
	}
	return a
}

// failed reports a desired state that cannot be rendered against every model.
func failed(site string, ds modelfleet.Desired, err error) modelfleet.Actual {
	a := modelfleet.Actual{Site: site, Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{}}
	for name := range ds.Models {
		a.Models[name] = modelfleet.ActualModel{Versions: []modelfleet.ServedVersion{}, Error: err.Error()}
	}
	return a
}
