package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/drivers/amlarc"
	"github.com/modelfleet/modelfleet/drivers/gitops"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/registry/azureml"
	"github.com/modelfleet/modelfleet/telemetry"
)

func dataDir() string { return envOr("MODELFLEET_DATA_DIR", ".modelfleet") }

// setupTelemetry starts tracing for a long-running process; traces go to
// OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set and to traceFile if given.
func setupTelemetry(ctx context.Context, service, traceFile string) (func(), error) {
	shutdown, err := telemetry.Setup(ctx, telemetry.Options{Service: service, TraceFile: traceFile})
	if err != nil {
		return nil, err
	}
	return func() { _ = shutdown(context.Background()) }, nil
}

func newDevCmd(g *globals) *cobra.Command {
	cfg := app.DevConfig{}
	var traces bool
	var store string
	var oipServers []string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole embedded stack: Temporal dev server + UI, gateway, registry, cloud worker, simulated sites",
		Long: `Run the whole embedded stack in the foreground, with no Azure account: a Temporal
dev server with its UI, the gateway (Event Grid webhook and site directory), the
embedded model registry (emitting Azure ML's Event Grid events), the cloud worker
and N simulated factory sites, each with its edge agent and inference router.
State lives in --data-dir ($MODELFLEET_DATA_DIR), so a restart resumes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return err
			}
			traceFile := ""
			if traces {
				traceFile = filepath.Join(cfg.DataDir, "traces.jsonl")
			}
			stop, err := setupTelemetry(cmd.Context(), "modelfleet-dev", traceFile)
			if err != nil {
				return err
			}
			defer stop()
			cfg.Logger = g.logger()
			if cfg.Store, err = storeDSN(store); err != nil {
				return err
			}
			if cfg.OIPServers, err = parseOIPServers(oipServers); err != nil {
				return err
			}
			return app.RunDev(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", dataDir(), "where all state lives ($MODELFLEET_DATA_DIR)")
	f.StringVar(&store, "store", "", storeFlagHelp)
	f.IntVar(&cfg.Sites, "sites", 3, "number of simulated factory sites")
	f.IntVar(&cfg.TemporalPort, "temporal-port", 7233, "Temporal frontend port")
	f.IntVar(&cfg.UIPort, "ui-port", 8233, "Temporal UI port")
	f.StringVar(&cfg.GatewayAddr, "gateway-addr", app.DefaultGatewayAddr, "gateway listen address")
	f.StringVar(&cfg.RegistryAddr, "registry-addr", "127.0.0.1:8081", "embedded registry listen address")
	f.IntVar(&cfg.SiteBasePort, "site-base-port", 9001, "site-N's router listens on this port + N - 1")
	f.StringVar(&cfg.TemporalBinary, "temporal-bin", os.Getenv("MODELFLEET_TEMPORAL_BIN"), "Temporal CLI binary (default: bin/tools/temporal, then $PATH)")
	f.BoolVar(&cfg.EphemeralPorts, "ephemeral-ports", false, "bind every listener on a free port (ignoring the address and port flags); <data-dir>/"+app.EndpointsFile+" says where each landed")
	f.BoolVar(&traces, "traces", true, "write OpenTelemetry spans to <data-dir>/traces.jsonl")
	f.BoolVar(&cfg.Factory, "factory", true, "run the shop floor: MQTT broker, a line simulator and the sample workload per site")
	f.StringVar(&cfg.MQTTAddr, "mqtt-addr", "127.0.0.1:1883", "embedded MQTT broker address")
	f.IntVar(&cfg.SimBasePort, "sim-base-port", 9101, "site-N's line simulator control API listens on this port + N - 1")
	f.IntVar(&cfg.WorkloadBasePort, "workload-base-port", 9201, "site-N's workload API listens on this port + N - 1")
	f.DurationVar(&cfg.SignalInterval, "signal-interval", app.DevSignalInterval, "how often each site closes a monitoring window and sends its signal message")
	f.DurationVar(&cfg.MonitorLookback, "monitor-lookback", app.DevMonitorLookback, "the drift monitor's rolling window; each site's reference is its first half-window of traffic")
	f.Int64Var(&cfg.MonitorMinRows, "monitor-min-rows", 1000, "scored rows a window needs before it can drift")
	f.DurationVar(&cfg.RetrainDebounce, "retrain-debounce", app.DevRetrainDebounce, "how long retraining waits for more drift after the first")
	f.StringArrayVar(&oipServers, "oip-server", nil, "an external model server every site may run versions in: NAME=/abs/path/to/binary [ARG...] (repeatable; as for `edge --oip-server`)")
	return cmd
}

// parseOIPServers reads --oip-server declarations.
func parseOIPServers(decls []string) ([]agent.OIPServer, error) {
	var out []agent.OIPServer
	for _, s := range decls {
		d, err := agent.ParseOIPServer(s)
		if err != nil {
			return nil, fmt.Errorf("--oip-server: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

func newGatewayCmd(g *globals) *cobra.Command {
	cfg := app.GatewayConfig{}
	var (
		keyParam, jwks, nsEndpoint, nsTopic, nsSub string
		issuers, audiences, monitors               []string
		reference                                  string
		lookback                                   time.Duration
		authCfg                                    app.AuthConfig
		oidcIssuer, oidcAudience                   string
		groupsClaim, rolesClaim                    string
		oidcTenants                                []string
		insecureNoAuth, insecureWebhook            bool
		store                                      string
		storeEntra                                 bool
		releaseVault, controlVault                 []string
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the gateway: Event Grid webhook (/api/events) and site directory (/api/sites)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stop, err := setupTelemetry(cmd.Context(), "modelfleet-gateway", "")
			if err != nil {
				return err
			}
			defer stop()
			cfg.Logger = g.logger()
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return err
			}
			if !insecureNoAuth {
				if authCfg.ReleaseVaultKeys, err = openReleaseVault(cmd.Context(), releaseVault); err != nil {
					return err
				}
				if authCfg.ControlVaultKeys, err = openVaultKeys(cmd.Context(), "control keys", controlVault); err != nil {
					return err
				}
				cfg.Auth = &authCfg
				if oidcIssuer != "" {
					cfg.Auth.OIDC = &auth.OIDCConfig{Issuer: oidcIssuer, Audience: oidcAudience, Tenants: oidcTenants, GroupsClaim: groupsClaim, RolesClaim: rolesClaim}
				} else if authCfg.BindingsFile != "" {
					return errors.New("--role-bindings needs --oidc-issuer and --oidc-audience: the issuer people and services get their tokens from")
				} else {
					return errors.New("the gateway authenticates every caller: give --oidc-issuer, --oidc-audience and --role-bindings (docs/security.md), or --insecure-no-auth for a throwaway gateway")
				}
			} else {
				cfg.Logger.Warn("AUTHENTICATION IS OFF (--insecure-no-auth): anyone who reaches this gateway can make every site load any model")
			}
			c, err := g.temporal().Dial(cmd.Context(), cfg.Logger)
			if err != nil {
				return err
			}
			defer c.Close()
			cfg.Temporal = c
			// Secrets come from the environment, never flags, so they do
			// not show in `ps` or shell history.
			if keys := splitList(os.Getenv("MODELFLEET_EVENT_KEYS")); len(keys) > 0 || jwks != "" {
				cfg.EventAuth = &events.AuthOptions{Keys: keys, QueryParam: keyParam}
				if jwks != "" {
					cfg.EventAuth.Entra = &events.EntraOptions{JWKSURL: jwks, Issuers: issuers, Audiences: audiences}
				}
			}
			if cfg.EventAuth == nil && !insecureWebhook && !loopback(cfg.Addr) {
				return fmt.Errorf("the Event Grid webhook needs authentication when the gateway listens on %s (not loopback): set $MODELFLEET_EVENT_KEYS (shared keys) or --entra-jwks-url with --entra-issuer and --entra-audience, or pass --insecure-webhook", cfg.Addr)
			}
			if len(monitors) > 0 {
				cfg.DriftMonitors = map[string]string{}
				for _, m := range monitors {
					name, model, ok := strings.Cut(m, "=")
					if !ok || name == "" || model == "" {
						return fmt.Errorf("--drift-monitor %q: want <monitor>=<model>", m)
					}
					cfg.DriftMonitors[name] = model
				}
			}
			if nsEndpoint != "" {
				key := os.Getenv("MODELFLEET_EVENTGRID_KEY")
				if nsTopic == "" || nsSub == "" || key == "" {
					return fmt.Errorf("event grid pull needs --eventgrid-topic, --eventgrid-subscription and $MODELFLEET_EVENTGRID_KEY")
				}
				cfg.Pull = &app.PullConfig{Endpoint: nsEndpoint, Topic: nsTopic, Subscription: nsSub, Key: key}
			}
			// The drift monitor consumes the gateway's embedded signal
			// queue, or Service Bus in Azure mode, where the gateway
			// relays the sites' messages to it (servicebus.go).
			if cfg.Signals, cfg.SignalRelay, err = gatewaySignals(); err != nil {
				return err
			}
			if cfg.Signals != nil {
				cfg.Logger.Info("drift monitor consuming the Service Bus signal queue")
			}
			cfg.Monitor = drift.Options{Reference: reference, Lookback: lookback}
			if cfg.Store, err = storeDSN(store); err != nil {
				return err
			}
			if cfg.StoreCredential, err = storeCredential(storeEntra, cfg.Store); err != nil {
				return err
			}
			gw, err := app.OpenGateway(cfg)
			if err != nil {
				return err
			}
			defer gw.Close()
			if cfg.Auth != nil && cfg.Auth.BindingsFile != "" {
				// SIGHUP re-reads the role bindings now; the reloader logs
				// and audits what it applied or refused.
				hup := make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				defer signal.Stop(hup)
				for {
					select {
					case <-hup:
						_ = gw.ReloadBindings()
					case <-cmd.Context().Done():
						return nil
					}
				}
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&oidcIssuer, "oidc-issuer", "", "OIDC issuer of people's and services' bearer tokens (Entra ID: https://login.microsoftonline.com/<tenant>/v2.0)")
	f.StringVar(&oidcAudience, "oidc-audience", "", "audience the tokens must carry (the gateway's application ID or URI)")
	f.StringArrayVar(&oidcTenants, "oidc-tenant", nil, "accept only tokens of this Entra tenant ID (tid; repeatable)")
	f.StringVar(&groupsClaim, "oidc-groups-claim", "groups", "claim carrying the caller's groups")
	f.StringVar(&rolesClaim, "oidc-roles-claim", "roles", "claim carrying the caller's app roles")
	f.StringVar(&authCfg.BindingsFile, "role-bindings", "", "role bindings file (docs/security.md); re-read when it changes and on SIGHUP")
	f.DurationVar(&authCfg.BindingsPoll, "role-bindings-poll", auth.DefaultBindingsPoll, "how often the gateway checks the role bindings file for a change")
	f.StringVar(&authCfg.PKIDir, "pki-dir", "", "site CA, control- and release-signing keys (release-keys/) and enrolments (default <data-dir>/pki)")
	f.StringArrayVar(&authCfg.Hosts, "tls-host", nil, "name or IP the gateway's server certificate is for (repeatable)")
	f.StringVar(&authCfg.TLSCertFile, "tls-cert", "", "server certificate (default: issued by the site CA)")
	f.StringVar(&authCfg.TLSKeyFile, "tls-key", "", "server certificate key")
	f.StringVar(&authCfg.SiteCACertFile, "site-ca-cert", "", "bring your own site CA certificate (cert-manager, Key Vault)")
	addReleaseVaultFlag(f, &releaseVault)
	f.StringArrayVar(&controlVault, "control-key-vault", splitList(os.Getenv("MODELFLEET_CONTROL_KEY_VAULT")),
		"control-statement (approval) signing key in Azure Key Vault, https://<vault>.vault.azure.net/keys/<name>[/<version>] (EC P-256; repeatable; signs before the keys in <pki-dir>/control-keys) ($MODELFLEET_CONTROL_KEY_VAULT, comma-separated)")
	f.StringVar(&authCfg.SiteCAKeyFile, "site-ca-key", "", "its key, to enrol sites (without it: verify only)")
	f.StringArrayVar(&authCfg.SiteCRLFiles, "site-crl-file", nil, "CRLs of the site CA (PEM, several blocks, or DER; repeatable): a certificate one lists is refused; re-read when the file changes")
	f.DurationVar(&authCfg.SiteCRLPoll, "site-crl-poll", auth.DefaultCRLPoll, "how often the gateway checks the CRL files for a change")
	f.BoolVar(&insecureWebhook, "insecure-webhook", false, "accept unauthenticated Event Grid deliveries on a non-loopback address")
	f.BoolVar(&insecureNoAuth, "insecure-no-auth", false, "serve plain HTTP with no authentication at all (never on a plant network)")
	f.StringVar(&cfg.Addr, "addr", app.DefaultGatewayAddr, "listen address")
	f.IntVar(&cfg.MaxLongPolls, "max-long-polls", fleet.DefaultMaxLongPolls, "sites' desired-state long polls held open at once; past it a site is told to retry later")
	f.StringVar(&cfg.DataDir, "data-dir", filepath.Join(dataDir(), "gateway"), "site directory location")
	f.StringVar(&store, "store", "", storeFlagHelp)
	f.BoolVar(&storeEntra, "store-entra", storeEntraDefault(), storeEntraFlagHelp)
	f.StringVar(&keyParam, "event-key-param", events.DefaultKeyQueryParam, "query parameter carrying the webhook key (keys: $MODELFLEET_EVENT_KEYS, comma-separated)")
	f.StringVar(&jwks, "entra-jwks-url", "", "require Microsoft Entra bearer tokens signed by a key from this JWKS URL")
	f.StringArrayVar(&issuers, "entra-issuer", nil, "accepted token issuer (repeatable)")
	f.StringArrayVar(&audiences, "entra-audience", nil, "accepted token audience (repeatable)")
	f.StringArrayVar(&monitors, "drift-monitor", nil, "Azure ML data drift monitor name=model (repeatable)")
	f.StringVar(&nsEndpoint, "eventgrid-namespace-endpoint", "", "also pull events from this Event Grid namespace (key: $MODELFLEET_EVENTGRID_KEY)")
	f.StringVar(&nsTopic, "eventgrid-topic", "", "namespace topic to pull from")
	f.StringVar(&nsSub, "eventgrid-subscription", "", "namespace event subscription to pull from")
	f.StringVar(&reference, "monitor-reference", drift.ReferenceTraining, "what the drift monitor compares each site's window with: training (the version's baseline) or site (the site's own first half-window)")
	f.DurationVar(&lookback, "monitor-lookback", 10*time.Minute, "the drift monitor's rolling window")
	return cmd
}

// loopback reports whether addr listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newWorkerCmd(g *globals) *cobra.Command {
	var metricsAddr, releaseKeys string
	var releaseVault []string
	var gitSigningKey string
	var gitCfg gitops.Config
	var aml amlarcFlags
	var amlReg azuremlRegistryFlags
	var train trainingFlags
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the cloud worker: release workflows and cloud activities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stop, err := setupTelemetry(cmd.Context(), "modelfleet-worker", "")
			if err != nil {
				return err
			}
			defer stop()
			log := g.logger()
			conn := g.temporal()
			reg := telemetry.NewRegistry()
			if metricsAddr != "" {
				mp, err := telemetry.NewMeterProvider(reg)
				if err != nil {
					return err
				}
				defer mp.Shutdown(context.Background())
				conn.Meter = mp.Meter("temporal-sdk-go")
			}
			c, err := conn.Dial(cmd.Context(), log)
			if err != nil {
				return err
			}
			defer c.Close()
			// The worker's identity at the gateway: a token from your
			// issuer (client credentials, workload identity) in
			// $MODELFLEET_TOKEN or $MODELFLEET_TOKEN_FILE, and the
			// gateway's CA in $MODELFLEET_GATEWAY_CA.
			wc := app.WorkerConfig{Temporal: c, RegistryURL: g.registryURL, GatewayURL: g.gatewayURL, GatewayClient: g.http(), Logger: log, MetricsAddr: metricsAddr, Metrics: reg}
			if gitCfg.URL != "" {
				gitCfg.GatewayURL, gitCfg.Log = g.gatewayURL, log
				// MODELFLEET_GITOPS_TOKEN (https) or _SSH_KEY (ssh).
				if gitCfg.Auth, err = gitops.CredentialsFromEnv().AuthFor(gitCfg.URL); err != nil {
					return err
				}
				if gitSigningKey != "" {
					if gitCfg.SignKey, err = gitops.LoadSigningKey(gitSigningKey); err != nil {
						return err
					}
				}
				wc.Drivers.GitOps = &gitCfg
			}
			if wc.Drivers.AMLArc, err = aml.config(); err != nil {
				return err
			}
			if a := wc.Drivers.AMLArc; a != nil {
				a.Progress = func(e amlarc.Event) {
					log.Debug("amlarc", "site", e.Site, "model", e.Model, "op", e.Op, "resource", e.Resource, "status", e.Status)
				}
				log.Info("amlarc driver on", "subscription", a.SubscriptionID, "resource_group", a.ResourceGroup, "workspace", a.Workspace, "location", a.Location)
				go probeCredential(cmd.Context(), a.Credential, log)
			}
			if rc, err := amlReg.config(&aml); err != nil {
				return err
			} else if rc != nil {
				if wc.Registry, err = azureml.New(*rc); err != nil {
					return err
				}
				log.Info("azure ml registry on", "subscription", rc.SubscriptionID, "resource_group", rc.ResourceGroup, "workspace", rc.Workspace, "datastore", rc.Datastore)
				go probeRegistryCredential(cmd.Context(), rc.Credential, log)
			}
			if wc.Retraining, err = train.retraining(&aml, &amlReg, log); err != nil {
				return err
			}
			if releaseKeys != "" || len(releaseVault) > 0 {
				vk, err := openReleaseVault(cmd.Context(), releaseVault)
				if err != nil {
					return err
				}
				rk, err := app.OpenReleaseKeys(releaseKeys, false, vk...)
				if err != nil {
					return err
				}
				wc.ReleaseSigner = rk
				var ids []string
				for _, k := range rk.Trust().Keys {
					ids = append(ids, k.ID)
				}
				log.Info("release statements are signed", "keys", ids, "key_vault_keys", len(vk))
				// Azure ML deploys only what they signed, too.
				if a := wc.Drivers.AMLArc; a != nil {
					a.Trust = rk.Trust()
				}
			} else {
				log.Warn("no --release-keys or --release-key-vault: validated versions are not signed, and sites that pinned release keys refuse them")
			}
			w, err := app.StartCloudWorker(wc)
			if err != nil {
				return err
			}
			<-cmd.Context().Done()
			w.Stop()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&releaseKeys, "release-keys", os.Getenv("MODELFLEET_RELEASE_KEYS"), "directory of the release-signing keys (the gateway's <pki-dir>/release-keys, mounted read-only) ($MODELFLEET_RELEASE_KEYS)")
	addReleaseVaultFlag(f, &releaseVault)
	f.StringVar(&metricsAddr, "metrics-addr", envOr("MODELFLEET_WORKER_METRICS_ADDR", ":9090"), "serve /metrics (process, Temporal SDK, activity outcomes by type), /healthz and /readyz here; empty: off ($MODELFLEET_WORKER_METRICS_ADDR)")
	f.StringVar(&gitCfg.URL, "gitops-repo", "", "fleet repository for sites whose driver is gitops (https, ssh or a path; credentials from $MODELFLEET_GITOPS_TOKEN or $MODELFLEET_GITOPS_SSH_KEY)")
	f.StringVar(&gitCfg.Branch, "gitops-branch", "main", "branch the clusters' Flux follows")
	f.StringVar(&gitSigningKey, "gitops-signing-key", os.Getenv("MODELFLEET_GITOPS_SIGNING_KEY"), "sign every gitops commit with this OpenPGP secret key (armored, no passphrase), for Flux's GitRepository verify ($MODELFLEET_GITOPS_SIGNING_KEY)")
	f.BoolVar(&gitCfg.PullRequests, "gitops-pull-requests", false, "push each change to a branch for a pull request instead")
	f.StringVar(&gitCfg.Image, "gitops-agent-image", "", "edge agent image in rendered manifests (default modelfleet:latest)")
	f.StringVar(&gitCfg.MQTTURL, "gitops-mqtt-url", os.Getenv("MODELFLEET_GITOPS_MQTT_URL"), "the sites' MQTT broker as their pods reach it, for workload Deployments ($MODELFLEET_GITOPS_MQTT_URL)")
	f.StringVar(&gitCfg.WorkloadKeySecret, "gitops-workload-key-secret", "", "Secret (key \"key\") with the router API key workload Deployments mount (default: none)")
	aml.add(f)
	amlReg.add(f)
	train.add(f)
	return cmd
}

func newEdgeCmd(g *globals) *cobra.Command {
	cfg := agent.Config{}
	var labels, oipServers []string
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Run one site's edge agent: inference router + desired-state pull (outbound connections only)",
		Long: `Run one site's edge agent: the inference router, serving the site's last good
models from --data-dir at once, and the long poll of the site's desired state
from the gateway (--gateway-url, or --desired-file), where it also reports.
Every connection it makes is outbound. A site holds no Temporal credential and
never dials Temporal, so this command takes no Temporal flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.SiteID == "" {
				return fmt.Errorf("--site is required")
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				cfg.Labels[k] = v
			}
			if cfg.DataDir == "" {
				cfg.DataDir = filepath.Join(dataDir(), "sites", cfg.SiteID)
			}
			var err error
			if cfg.OIPServers, err = parseOIPServers(oipServers); err != nil {
				return err
			}
			stop, err := setupTelemetry(cmd.Context(), "modelfleet-edge", "")
			if err != nil {
				return err
			}
			defer stop()
			cfg.Logger = g.logger()
			cfg.GatewayURL = g.gatewayURL
			// A Temporal credential left in a site's environment (agents used
			// to dial Temporal) is unused: say so, so it can be revoked.
			for _, v := range []string{"MODELFLEET_TEMPORAL_API_KEY", "MODELFLEET_TEMPORAL_TLS_CERT", "MODELFLEET_TEMPORAL_TLS_KEY"} {
				if os.Getenv(v) != "" {
					cfg.Logger.Warn("ignoring a Temporal credential: edge agents never dial Temporal; remove it from the site and revoke it", "variable", v)
				}
			}
			// The join token is a credential: from the environment, or a
			// file (the edge chart's Secret), never a flag.
			cfg.JoinToken = os.Getenv("MODELFLEET_JOIN_TOKEN")
			if f := os.Getenv("MODELFLEET_JOIN_TOKEN_FILE"); cfg.JoinToken == "" && f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("join token: %w", err)
				}
				cfg.JoinToken = strings.TrimSpace(string(b))
			}
			if cfg.SignalSender, err = signalSender(); err != nil {
				return err
			}
			s, err := agent.Open(cfg)
			if err != nil {
				return err
			}
			defer s.Edge.Close()
			return s.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.SiteID, "site", "", "site id (required)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:9001", "inference router listen address")
	f.StringVar(&cfg.AdvertiseURL, "advertise-url", "", "router URL recorded in the site directory (default http://<listen>)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "site state directory (default $MODELFLEET_DATA_DIR/sites/<site>)")
	f.StringArrayVar(&labels, "label", nil, "site label key=value (repeatable), e.g. ring=canary")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", agent.DefaultHeartbeat, "how often to report to the site directory")
	f.StringVar(&cfg.DesiredFile, "desired-file", "", "take the desired state from this JSON file (the gitops driver's ConfigMap, mounted), re-read every --heartbeat, instead of the gateway")
	f.BoolVar(&cfg.ExternalWorkloads, "external-workloads", false, "the site's workloads run as their own processes (modelfleet workload run, a workload image), not in this agent")
	f.StringVar(&cfg.ExternalWorkloadHealth, "external-workload-health", agent.DefaultExternalWorkloadHealth, "with --external-workloads: each workload's GET /healthz, {name} the workload, read to report which version runs (none: not asked)")
	f.DurationVar(&cfg.ExternalWorkloadGrace, "external-workload-grace", agent.DefaultExternalWorkloadGrace, "with --external-workloads: how long a workload may take to run the desired version before the site reports it failed")
	f.StringVar(&cfg.ReleaseKeysFile, "release-keys", "", "pin the release keys by hand (JSON, as `modelfleet keys export` prints); default: those the gateway gave at enrolment")
	f.StringArrayVar(&cfg.ArtifactHosts, "artifact-host", nil, "download artifacts only from this host or host:port (repeatable; default: any)")
	f.DurationVar(&cfg.DownloadTimeout, "download-timeout", agent.DefaultDownloadTimeout, "how long one artifact download may take")
	f.StringArrayVar(&oipServers, "oip-server", nil, "an external model server versions may run in: NAME=/abs/path/to/binary [ARG...] (repeatable; {port} and {model_dir} in ARGs; with ARGs, versions cannot bring their own)")
	f.DurationVar(&cfg.ServerReadyTimeout, "oip-server-ready-timeout", agent.DefaultServerReadyTimeout, "how long an external model server may take to become ready")
	f.StringVar(&cfg.APIKeysFile, "api-keys-file", os.Getenv("MODELFLEET_API_KEYS_FILE"), "router API keys file (YAML or JSON, kind RouterAPIKeys; a mounted Secret), re-read when it changes; its scopes win over the desired state's ($MODELFLEET_API_KEYS_FILE)")
	return cmd
}
