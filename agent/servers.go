package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
)

// External model servers. A version may run in a model server that speaks
// the Open Inference Protocol instead of the built-in runtime. A desired
// state must never make a site run a command of its choosing, so the
// version only names a server (modelfleet.ModelServer.Name) and the site's
// operator declares which servers exist and where their binaries are
// (Config.OIPServers, `--oip-server NAME=PATH`). The agent starts the
// declared binary as its child on a loopback port, in the directory the
// version's archive (digest-checked, signed like any artifact) unpacks to,
// with an environment of its own (none of the agent's credentials), waits
// until the server and the model are ready, restarts it with backoff when
// it exits, and stops it when the version stops being served.

// Defaults of the server host.
const (
	// DefaultServerReadyTimeout is how long a started server may take to
	// say it and its model are ready before the version fails to load.
	DefaultServerReadyTimeout = 2 * time.Minute
	// serverBackoffMax caps the wait before a crashed server is restarted.
	serverBackoffMax = 30 * time.Second
	// serverStable is how long a server must run for its next crash to
	// be restarted after the shortest wait again.
	serverStable = time.Minute
)

// OIPServer is a model server a site's operator allows the agent to run.
type OIPServer struct {
	Name string // what versions call it (modelfleet.ModelServer.Name)
	Path string // absolute path of the binary
	// Args, when set, are the server's arguments, and a version that brings
	// others is refused; when empty, a version's arguments are used.
	Args []string
}

// ParseOIPServer reads a declaration "NAME=PATH [ARG...]" (arguments
// separated by spaces, with {port} and {model_dir} placeholders).
func ParseOIPServer(s string) (OIPServer, error) {
	name, rest, ok := strings.Cut(s, "=")
	fields := strings.Fields(rest)
	if !ok || len(fields) == 0 {
		return OIPServer{}, fmt.Errorf("model server %q: want NAME=/path/to/server [ARG...]", s)
	}
	d := OIPServer{Name: name, Path: fields[0], Args: fields[1:]}
	if err := modelfleet.ValidateName("model server name", name); err != nil {
		return d, err
	}
	if !filepath.IsAbs(d.Path) {
		return d, fmt.Errorf("model server %q: path %q is not absolute", name, d.Path)
	}
	ms := modelfleet.ModelServer{Name: name, Model: "m", Args: d.Args, Task: modelfleet.TaskBinary}
	if err := ms.Validate(); err != nil {
		return d, err
	}
	return d, nil
}

// serverHost is the agent's edge.ServerHost.
type serverHost struct {
	allowed map[string]OIPServer
	dir     string // <DataDir>/servers: one unpacked model directory per running version
	log     *slog.Logger
	ready   time.Duration

	mu    sync.Mutex
	procs map[string]*serverProc // by key()

	restarts *prometheus.CounterVec // by model, version, server
	up       *prometheus.GaugeVec
}

var _ edge.ServerHost = (*serverHost)(nil)

func newServerHost(decls []OIPServer, dir string, ready time.Duration, log *slog.Logger) (*serverHost, error) {
	h := &serverHost{allowed: map[string]OIPServer{}, dir: dir, log: log, ready: ready, procs: map[string]*serverProc{},
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelfleet_edge_model_server_restarts_total",
			Help: "Times an external model server exited and was restarted, by the version it serves.",
		}, []string{"model", "version", "server"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "modelfleet_edge_model_server_up",
			Help: "1 while the process of a version's external model server runs, 0 while it waits to be restarted.",
		}, []string{"model", "version", "server"}),
	}
	if h.ready <= 0 {
		h.ready = DefaultServerReadyTimeout
	}
	for _, d := range decls {
		if _, dup := h.allowed[d.Name]; dup {
			return nil, fmt.Errorf("model server %q is declared twice", d.Name)
		}
		fi, err := os.Stat(d.Path)
		if err != nil {
			return nil, fmt.Errorf("model server %q: %w", d.Name, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("model server %q: %s is not an executable file", d.Name, d.Path)
		}
		h.allowed[d.Name] = d
	}
	// Directories of servers a previous run left behind are stale.
	_ = os.RemoveAll(dir)
	return h, nil
}

func key(ref modelfleet.ModelRef, digest string) string {
	return ref.Name + "/" + ref.Version + "/" + digest
}

// serverProc is one version's supervised server.
type serverProc struct {
	ref    modelfleet.ModelRef
	digest string
	server modelfleet.ModelServer
	url    string
	dir    string
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	pid      int
	restarts int

	restartsTotal prometheus.Counter
	up            prometheus.Gauge
	forget        func() // deletes up: a stopped server is not "down"
}

// register adds the host's metrics to the router's registry, with the
// site's label as the router's own metrics have it.
func (h *serverHost) register(reg *prometheus.Registry, site string) error {
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"site": site}, reg)
	if err := wrapped.Register(h.restarts); err != nil {
		return err
	}
	return wrapped.Register(h.up)
}

// Start implements edge.ServerHost.
func (h *serverHost) Start(ref modelfleet.ModelRef, digest string, ms *modelfleet.ModelServer, artifact string) (string, error) {
	decl, ok := h.allowed[ms.Name]
	if !ok {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "model server %q is not one this site runs (declared: %s)", ms.Name, h.declared())
	}
	if len(decl.Args) > 0 && len(ms.Args) > 0 && strings.Join(decl.Args, "\x00") != strings.Join(ms.Args, "\x00") {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "model server %q: this site fixes its arguments, and the version brings others", ms.Name)
	}
	k := key(ref, digest)
	h.mu.Lock()
	if p, ok := h.procs[k]; ok && p.server.Equal(ms) {
		h.mu.Unlock()
		return p.url, nil
	}
	if p, ok := h.procs[k]; ok {
		delete(h.procs, k)
		p.stop()
	}
	sum := sha256.Sum256([]byte(k))
	dir := filepath.Join(h.dir, ref.Name, hex.EncodeToString(sum[:8]))
	h.mu.Unlock()

	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := unpack(artifact, dir); err != nil {
		_ = os.RemoveAll(dir)
		return "", modelfleet.Errorf(modelfleet.EINVALID, "model server %q: unpack the model directory: %v", ms.Name, err)
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	args := decl.Args
	if len(args) == 0 {
		args = ms.Args
	}
	r := strings.NewReplacer(modelfleet.ServerArgPort, strconv.Itoa(port), modelfleet.ServerArgModelDir, dir)
	argv := make([]string, len(args))
	for i, a := range args {
		argv[i] = r.Replace(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &serverProc{ref: ref, digest: digest, server: *ms.Clone(), url: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, cancel: cancel, done: make(chan struct{}),
		restartsTotal: h.restarts.WithLabelValues(ref.Name, ref.Version, ms.Name), up: h.up.WithLabelValues(ref.Name, ref.Version, ms.Name)}
	p.forget = func() { h.up.DeleteLabelValues(ref.Name, ref.Version, ms.Name) }
	log := h.log.With("model", ref.String(), "server", ms.Name, "url", p.url)
	go p.supervise(ctx, decl.Path, argv, log)
	h.mu.Lock()
	h.procs[k] = p
	h.mu.Unlock()

	if err := p.waitReady(ctx, h.ready); err != nil {
		h.mu.Lock()
		if h.procs[k] == p {
			delete(h.procs, k)
		}
		h.mu.Unlock()
		p.stop()
		return "", modelfleet.Errorf(modelfleet.EINVALID, "model server %q did not become ready within %s: %v", ms.Name, h.ready, err)
	}
	log.Info("model server ready")
	return p.url, nil
}

// Retain implements edge.ServerHost.
func (h *serverHost) Retain(model string, keep []modelfleet.ServedModel) {
	h.mu.Lock()
	var stop []*serverProc
	for k, p := range h.procs {
		if p.ref.Name != model {
			continue
		}
		kept := false
		for _, s := range keep {
			kept = kept || (s.ModelRef == p.ref && s.Digest == p.digest)
		}
		if !kept {
			delete(h.procs, k)
			stop = append(stop, p)
		}
	}
	h.mu.Unlock()
	for _, p := range stop {
		p.stop()
		h.log.Info("model server stopped: its version is no longer served", "model", p.ref.String(), "server", p.server.Name)
	}
}

// Close implements edge.ServerHost.
func (h *serverHost) Close() {
	h.mu.Lock()
	procs := h.procs
	h.procs = map[string]*serverProc{}
	h.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
}

// status reports the pid and restarts of a version's server (tests,
// diagnostics); ok is false when none runs.
func (h *serverHost) status(ref modelfleet.ModelRef) (pid, restarts int, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.procs {
		if p.ref == ref {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.pid, p.restarts, true
		}
	}
	return 0, 0, false
}

func (h *serverHost) declared() string {
	var names []string
	for n := range h.allowed {
		names = append(names, strconv.Quote(n))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (p *serverProc) stop() {
	p.cancel()
	<-p.done
	p.forget()
	_ = os.RemoveAll(p.dir)
}

// supervise runs the server until ctx ends, restarting it with backoff
// (1s, doubling to 30s; back to 1s after a minute up) whenever it exits.
func (p *serverProc) supervise(ctx context.Context, path string, argv []string, log *slog.Logger) {
	defer close(p.done)
	backoff := time.Second
	for {
		cmd := exec.CommandContext(ctx, path, argv...)
		cmd.Dir = p.dir
		// Its own environment: the agent's holds credentials (a join
		// token, a Service Bus key) that are no business of the server.
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + p.dir, "LANG=C.UTF-8"}
		cmd.Stdout = &logWriter{log: log, level: slog.LevelInfo}
		cmd.Stderr = &logWriter{log: log, level: slog.LevelWarn}
		setProcessGroup(cmd)
		cmd.WaitDelay = 10 * time.Second
		began := time.Now()
		err := cmd.Start()
		if err == nil {
			p.mu.Lock()
			p.pid = cmd.Process.Pid
			p.mu.Unlock()
			p.up.Set(1)
			log.Info("model server started", "pid", cmd.Process.Pid)
			err = cmd.Wait()
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > serverStable {
			backoff = time.Second
		}
		p.mu.Lock()
		p.restarts++
		p.pid = 0
		p.mu.Unlock()
		p.up.Set(0)
		p.restartsTotal.Inc()
		log.Warn("model server exited; restarting", "err", err, "in", backoff)
		if modelfleet.Sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(2*backoff, serverBackoffMax)
	}
}

// waitReady polls the server's readiness and its model's until both
// answer 200, the server process is gone for good (ctx), or the deadline.
func (p *serverProc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	last := fmt.Errorf("no answer yet")
	for {
		if last = probe(ctx, hc, p.url+"/v2/health/ready"); last == nil {
			if last = probe(ctx, hc, p.url+"/v2/models/"+p.server.Model+"/ready"); last == nil {
				return nil
			}
		}
		if modelfleet.Sleep(ctx, 100*time.Millisecond) != nil {
			return fmt.Errorf("last check: %v", last)
		}
	}
}

func probe(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; the server then exits, and its
// restart fails the same way until the ready deadline, which reports it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logWriter logs a server's output line by line, each line bounded.
type logWriter struct {
	log   *slog.Logger
	level slog.Level
	mu    sync.Mutex
	buf   []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			if len(w.buf) > 4096 {
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			return len(b), nil
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *logWriter) emit(line []byte) {
	if len(line) > 1024 {
		line = line[:1024]
	}
	w.log.Log(context.Background(), w.level, "model server output", "line", string(line))
}
