package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/bench/internal/agents"
	"github.com/modelfleet/modelfleet/httpjson"
)

// The fleet (-fleet-sites N): N more sites whose real edge agents
// (agent.Site, as `modelfleet edge` runs one) share one process, so a
// thousand sites fit the machine where a thousand `modelfleet edge`
// processes would not. That process is this binary's hidden fleetCommand;
// the harness starts it, SIGKILLs and restarts it as a chaos action of its
// own (killFleet), and observes its sites as it observes the others.
// Each site has its own data dir, router port and identity: with -auth it
// enrols with a join token the harness asked the gateway for (as `modelfleet
// site enroll` does, as the admin, through the balancer), then runs on mTLS
// from the identity on its disk, with no token, after every restart.

// fleetCommand is the hidden subcommand that hosts the fleet's agents.
const fleetCommand = "fleet-agents"

// fleetSpec is what the fleet process runs, written by the harness.
type fleetSpec struct {
	GatewayURL string          `json:"gatewayURL"`
	Heartbeat  time.Duration   `json:"heartbeat"`
	Ready      string          `json:"ready"`  // address the process serves /readyz on
	Tokens     string          `json:"tokens"` // site -> join token (JSON); absent once all enrolled
	Sites      []fleetSiteSpec `json:"sites"`
}

type fleetSiteSpec struct {
	ID     string `json:"id"`
	Dir    string `json:"dir"`
	Listen string `json:"listen"`
	Ring   string `json:"ring"`
}

// fleetMain is the fleet process: it opens every site's agent (each
// router serving its last good models from disk at once), runs them, and
// answers /readyz once all are open, until SIGTERM.
func fleetMain(args []string) int {
	fs := flag.NewFlagSet(fleetCommand, flag.ExitOnError)
	specFile := fs.String("spec", "", "the fleet's spec (JSON), written by the harness")
	level := fs.String("log-level", "warn", "log level")
	_ = fs.Parse(args)
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(*level))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if err := runFleet(*specFile, log); err != nil {
		log.Error("fleet", "error", err)
		return 1
	}
	return 0
}

func runFleet(specFile string, log *slog.Logger) error {
	b, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var spec fleetSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", specFile, err)
	}
	tokens := map[string]string{}
	if b, err := os.ReadFile(spec.Tokens); err == nil {
		if err := json.Unmarshal(b, &tokens); err != nil {
			return fmt.Errorf("%s: %w", spec.Tokens, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", spec.Ready)
	if err != nil {
		return err
	}
	sites, err := agents.Open(len(spec.Sites), func(i int) (*agent.Site, error) {
		s := spec.Sites[i]
		return agent.Open(agent.Config{
			SiteID:            s.ID,
			DataDir:           s.Dir,
			Listen:            s.Listen,
			GatewayURL:        spec.GatewayURL,
			JoinToken:         tokens[s.ID], // used only while the site has no identity
			Labels:            map[string]string{"ring": s.Ring},
			HeartbeatInterval: spec.Heartbeat,
			Logger:            log,
		})
	})
	if err != nil {
		ln.Close()
		return err
	}
	halt := agents.Run(sites)
	defer halt()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d sites\n", len(sites))
	})}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	return srv.Close()
}

// fleetSite is the i-th fleet site's ID and ring: 1% canaries, the rest
// in the main wave.
func fleetSite(i, n int) (id, ring string) {
	ring = "main"
	if i < max(n/100, 1) {
		ring = "canary"
	}
	return fmt.Sprintf("fleet-%04d", i+1), ring
}

// startFleet writes the fleet's spec (and, with -auth, a join token per
// site, asked of the gateway as the admin), starts the fleet process and,
// with -auth, waits for every site to enrol; the fleet's sites.
func (c *chaos) startFleet(ctx context.Context, ports []int, logs string) error {
	n := c.o.fleetSites
	dir := filepath.Join(c.dir, "fleet")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	spec := fleetSpec{GatewayURL: c.gwURL, Heartbeat: c.o.fleetHeartbeat, Ready: fmt.Sprintf("127.0.0.1:%d", ports[0]), Tokens: filepath.Join(dir, "join-tokens.json")}
	tokens := map[string]string{}
	var admin *http.Client
	if c.trust != nil {
		if admin, err = c.trust.client("admin.token"); err != nil {
			return err
		}
		admin.Timeout = 30 * time.Second
	}
	for i := range n {
		id, ring := fleetSite(i, n)
		fs := fleetSiteSpec{ID: id, Dir: filepath.Join(c.dir, "sites", id), Listen: fmt.Sprintf("127.0.0.1:%d", ports[1+i]), Ring: ring}
		spec.Sites = append(spec.Sites, fs)
		c.fleetSites = append(c.fleetSites, &site{id: id, dir: fs.Dir, router: "http://" + fs.Listen})
		if admin != nil {
			if tokens[id], err = c.joinToken(ctx, admin, id, ring); err != nil {
				return err
			}
		}
	}
	if err := writeJSON(spec.Tokens, tokens); err != nil {
		return err
	}
	specFile := filepath.Join(dir, "spec.json")
	if err := writeJSON(specFile, spec); err != nil {
		return err
	}
	c.fleet = &proc{name: "fleet", bin: self, log: filepath.Join(logs, "fleet.log"), ready: "http://" + spec.Ready + "/readyz",
		args: []string{fleetCommand, "-spec", specFile}}
	for _, s := range c.fleetSites {
		s.proc = c.fleet
	}
	began := time.Now()
	if err := c.fleet.Start(ctx); err != nil {
		return err
	}
	if c.trust == nil {
		return nil
	}
	// Every site enrols (CSR, its certificate, the release keys pinned);
	// from then on the process starts from the identities on disk.
	deadline := time.Now().Add(10 * time.Minute)
	for _, s := range c.fleetSites {
		for s.cert = certID(s.dir); s.cert == ""; s.cert = certID(s.dir) {
			if time.Now().After(deadline) || !c.fleet.running() {
				return fmt.Errorf("fleet site %s did not enrol (log: %s)", s.id, c.fleet.log)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(s.dir, "identity", "release-keys.json")); err != nil {
			return fmt.Errorf("%s enrolled without pinning the release keys: %w", s.id, err)
		}
		c.enrolments.Add(1)
	}
	fmt.Fprintf(c.out, "fleet: %d sites in one process enrolled with join tokens in %.1fs\n", n, time.Since(began).Seconds())
	// The tokens were good once: restarts run from the identities.
	return os.Remove(spec.Tokens)
}

// joinToken asks the gateway for a site's join token, as `modelfleet site
// enroll` does (POST /api/sites/{id}/enroll, the admin's token), through
// the balancer; a replica killed meanwhile is retried.
func (c *chaos) joinToken(ctx context.Context, admin *http.Client, id, ring string) (string, error) {
	body, _ := json.Marshal(app.JoinTokenRequest{Labels: map[string]string{"ring": ring}})
	var err error
	for try := 0; try < 5; try++ {
		var res app.JoinTokenResponse
		if err = httpjson.Do(ctx, admin, "gateway", http.MethodPost, c.gwURL+"/api/sites/"+url.PathEscape(id)+"/enroll", body, &res); err == nil {
			return res.Token, nil
		}
		time.Sleep(time.Second)
	}
	return "", fmt.Errorf("join token for %s: %w", id, err)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// allSites are the process agents' sites and the fleet's.
func (c *chaos) allSites() []*site {
	return append(append([]*site(nil), c.sites...), c.fleetSites...)
}
