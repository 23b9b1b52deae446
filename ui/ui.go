// Package ui is the fleet dashboard the gateway serves at /ui/:
// server-rendered pages (html/template, every asset embedded), live
// updates over Server-Sent Events, charts as inline SVG. It holds no
// state of its own: it reads the site directory, the releases, the drift
// monitor and the signal queue, and sends controls through the same
// signed path as the API. Who may see and do what is the gateway's guard
// (Rules), with the person's own token in a session cookie.
package ui

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/queue"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Sites is the site directory the fleet page lists.
type Sites interface {
	List() ([]modelfleet.Site, error)
}

// Releases lists and reads releases (the orchestrator).
type Releases interface {
	ListReleases(ctx context.Context, model string, limit int) ([]modelfleet.ReleaseSummary, error)
	ReleaseStatus(ctx context.Context, releaseID string) (modelfleet.ReleaseStatus, error)
}

// Queue is the signal queue the queues page shows.
type Queue interface {
	Stats() (queue.Stats, error)
	Peek(from int64, max int, deadLetter bool) ([]queue.PeekedMessage, error)
	Redrive(ctx context.Context, max int) (int, error)
}

// Config is what the dashboard reads and how it acts.
type Config struct {
	Sites    Sites
	Releases Releases
	// Control authorises, signs and sends a control for p, exactly as
	// POST /api/controls does (role, an approver's scope, the signed
	// statement).
	Control func(ctx context.Context, p *auth.Principal, release, action, reason string) error
	// Verify authenticates a pasted token at sign-in (the guard's).
	Verify func(ctx context.Context, token string) (*auth.Principal, error)
	// Monitor returns the drift monitor's counts and latest verdicts (nil:
	// no monitor in this process).
	Monitor func() (drift.Stats, []drift.Verdict)
	// Retraining returns a model's retraining status (nil, nil: it has
	// never been retrained); the drift page shows its cycles, challenger
	// against champion. Nil: not shown.
	Retraining func(ctx context.Context, model string) (*RetrainView, error)
	// Queue is the embedded signal queue (nil: Service Bus, not shown).
	Queue Queue
	// Audit returns the gateway's latest audit records, newest first (the
	// guard's RecentAudit); admins see them on the queues and audit page.
	Audit func() []auth.AuditRecord
	// TemporalUI is the Temporal UI's base URL, for links to a release's
	// workflow in Namespace (default "default"); empty: no links.
	TemporalUI, Namespace string
	// OfflineAfter is how long after its last report a site counts as
	// offline (default DefaultOfflineAfter).
	OfflineAfter time.Duration
	// LiveInterval is how often an open page's live region is rendered
	// again and, when it changed, pushed (default DefaultLiveInterval).
	LiveInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Defaults.
const (
	DefaultOfflineAfter = 2 * time.Minute
	DefaultLiveInterval = 2 * time.Second
	// A live stream ends after streamLifetime and the browser reconnects,
	// so a revoked token or role stops the updates within it.
	streamLifetime = 5 * time.Minute
	// Prefix is where the gateway mounts the dashboard.
	Prefix = "/ui/"
)

// Handler serves the dashboard.
type Handler struct {
	cfg     Config
	mux     *http.ServeMux
	pages   map[string]*template.Template
	static  http.Handler
	codes   *loginCodes
	history *driftHistory
	fleet   fleetCache
	done    chan struct{}
	close   sync.Once
}

// New returns the dashboard's handler. Mount it behind the gateway's
// guard with Rules.
func New(cfg Config) (*Handler, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = DefaultOfflineAfter
	}
	if cfg.LiveInterval <= 0 {
		cfg.LiveInterval = DefaultLiveInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, codes: newLoginCodes(cfg.Now), history: newDriftHistory(), done: make(chan struct{})}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	h.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"fleet", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /ui/login", h.loginPage)
	mux.HandleFunc("POST /ui/login", h.login)
	mux.HandleFunc("POST /ui/logout", h.logout)
	mux.Handle("GET /ui/static/", h.static)
	mux.HandleFunc("GET /ui/fleet", h.page("fleet", h.fleetData))
	mux.HandleFunc("GET /ui/releases", h.page("releases", h.releasesData))
	mux.HandleFunc("GET /ui/releases/{model}/{version}", h.page("release", h.releaseData))
	mux.HandleFunc("POST /ui/releases/{model}/{version}/control", h.control)
	mux.HandleFunc("GET /ui/drift", h.page("drift", h.driftData))
	mux.HandleFunc("GET /ui/queues", h.page("queues", h.queuesData))
	mux.HandleFunc("POST /ui/queues/redrive", h.redrive)
	h.mux = mux
	if cfg.Monitor != nil {
		// The monitor keeps each series' latest verdict only: sample it, so
		// the drift page has each feature's history even when nobody
		// looked at it meanwhile.
		go h.sampleDrift(DefaultDriftSample)
	}
	return h, nil
}

// DefaultDriftSample is how often the dashboard records the drift
// monitor's verdicts for its history.
const DefaultDriftSample = 15 * time.Second

func (h *Handler) sampleDrift(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, vs := h.cfg.Monitor()
		h.history.record(vs)
		select {
		case <-h.done:
			return
		case <-t.C:
		}
	}
}

// Rules is the dashboard's part of the gateway's route table: pages need
// the read permission of what they show, changes the permission of the
// change, and both take the session cookie (auth.Rule.Session).
func Rules() []auth.Rule {
	p := func(perms ...auth.Permission) []auth.Permission { return perms }
	return []auth.Rule{
		// Signing in and out needs no identity: the token pasted (or the
		// one-time code) is the credential, and signing out only clears
		// the cookie.
		{Pattern: "/ui/login", Public: true},
		{Pattern: "POST /ui/logout", Public: true},
		{Pattern: "GET /ui/static/", Public: true},
		{Pattern: "GET /ui/{$}", Any: p(auth.SitesRead), Session: true},
		{Pattern: "GET /ui/fleet", Any: p(auth.SitesRead), Session: true},
		{Pattern: "GET /ui/releases", Any: p(auth.ReleasesRead), Session: true},
		{Pattern: "GET /ui/releases/{model}/{version}", Any: p(auth.ReleasesRead), Session: true},
		// The handler checks the action against the person's roles and an
		// approver's scope, as POST /api/controls does.
		{Pattern: "POST /ui/releases/{model}/{version}/control", Any: p(auth.ReleasesApprove, auth.ReleasesControl, auth.ReleasesAbortOwn), Session: true},
		{Pattern: "GET /ui/drift", Any: p(auth.MonitorRead), Session: true},
		{Pattern: "GET /ui/queues", Any: p(auth.QueuesRead), Session: true},
		{Pattern: "POST /ui/queues/redrive", Any: p(auth.QueuesManage), Session: true},
	}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// Everything the pages load is their own: no inline script, no other
	// origin, no framing.
	hdr.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends "Origin: null"
	// with a form post, which the sign-in check must refuse.
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
		hdr.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// Close ends the live streams (the gateway is stopping).
func (h *Handler) Close() { h.close.Do(func() { close(h.done) }) }
