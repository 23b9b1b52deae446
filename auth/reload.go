package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// DefaultBindingsPoll is how often a BindingsReloader looks at its file
// (default 5s).
const DefaultBindingsPoll = 5 * time.Second

// BindingsReloader keeps a guard's role bindings in step with their
// file. Kubernetes updates a mounted ConfigMap by swapping a symlink,
// which file-change notifications on the file itself miss, so the
// reloader reads the file every Poll and compares its content's hash;
// SIGHUP (Reload) reads it at once. A file that does not parse, or
// cannot be read, changes nothing: the bindings in force stay, and the
// refusal is logged, audited and counted
// (modelfleet_auth_bindings_reloads_total{outcome="refused"}, and
// modelfleet_auth_bindings_reload_failing is 1 until a good file
// arrives).
type BindingsReloader struct {
	Path string
	// Poll is how often Run looks at the file (DefaultBindingsPoll when
	// zero).
	Poll time.Duration
	// Guard receives the bindings; set it before Run or Reload.
	Guard *Guard
	Log   *slog.Logger

	mu      sync.Mutex
	applied string // hash of the content in force
	refused string // hash of the last content refused (logged once)
	reloads *prometheus.CounterVec
	failing prometheus.Gauge
}

// NewBindingsReloader returns a reloader of path whose metrics are
// registered with reg (nil: none).
func NewBindingsReloader(path string, log *slog.Logger, reg prometheus.Registerer) *BindingsReloader {
	r := &BindingsReloader{Path: path, Log: log}
	r.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelfleet_auth_bindings_reloads_total", Help: "Role bindings file reloads, by outcome (applied, refused).",
	}, []string{"outcome"})
	r.failing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "modelfleet_auth_bindings_reload_failing", Help: "1 while the role bindings file on disk is refused and older bindings are in force.",
	})
	if reg != nil {
		reg.MustRegister(r.reloads, r.failing)
	}
	return r
}

// Load reads and parses the file for the first time (at start, where
// a bad file is fatal) and remembers what it applied.
func (r *BindingsReloader) Load() (*Bindings, error) {
	b, sum, err := r.read()
	if err != nil {
		return nil, err
	}
	bd, err := ParseBindings(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	r.mu.Lock()
	r.applied = sum
	r.mu.Unlock()
	return bd, nil
}

// Check applies the file if its content changed since the last bindings
// applied; it returns the reason a changed file was refused.
func (r *BindingsReloader) Check() error { return r.check(false) }

// Reload reads and applies the file now, changed or not (SIGHUP).
func (r *BindingsReloader) Reload() error { return r.check(true) }

// Run checks the file every Poll until ctx ends.
func (r *BindingsReloader) Run(ctx context.Context) {
	poll := r.Poll
	if poll <= 0 {
		poll = DefaultBindingsPoll
	}
	pollChecks(ctx, poll, r.Check)
}

func (r *BindingsReloader) check(force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, sum, err := r.read()
	if err == nil && sum == r.applied && !force {
		return nil
	}
	var bd *Bindings
	if err == nil {
		bd, err = ParseBindings(b)
	}
	if err != nil {
		r.failing.Set(1)
		key := sum
		if key == "" {
			key = "unreadable: " + err.Error()
		}
		if key != r.refused || force {
			// Once per broken content, not at every poll.
			r.refused = key
			r.reloads.WithLabelValues("refused").Inc()
			r.logger().Error("role bindings file refused: the bindings in force stay", "file", r.Path, "error", err)
			r.audit(false, "kept the bindings in force: "+err.Error())
		}
		return fmt.Errorf("role bindings %s: %w", r.Path, err)
	}
	if r.Guard == nil {
		return errors.New("role bindings reloader: no guard")
	}
	r.Guard.SetBindings(bd)
	r.applied, r.refused = sum, ""
	r.failing.Set(0)
	r.reloads.WithLabelValues("applied").Inc()
	r.logger().Info("role bindings reloaded", "file", r.Path, "bindings", len(bd.Bindings), "sha256", sum[:16])
	r.audit(true, fmt.Sprintf("%d bindings, sha256 %s", len(bd.Bindings), sum[:16]))
	return nil
}

// read returns the file's content (bounded) and its hash. Opening the
// path follows a ConfigMap's symlinks to the current content.
func (r *BindingsReloader) read() ([]byte, string, error) {
	b, err := readBounded(r.Path, MaxBindingsSize)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, "", fmt.Errorf("role bindings %s: no such file (see docs/security.md for its format)", r.Path)
	case modelfleet.ErrorCode(err) == modelfleet.ETOOLARGE:
		return nil, "", modelfleet.Errorf(modelfleet.ETOOLARGE, "role bindings %s: over %d bytes", r.Path, MaxBindingsSize)
	case err != nil:
		return nil, "", err
	}
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:]), nil
}

func (r *BindingsReloader) audit(applied bool, why string) {
	if r.Guard != nil {
		r.Guard.record("role bindings file", "reload role bindings", r.Path, applied, why)
	}
}

func (r *BindingsReloader) logger() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}
