package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/orchestrator"
	"github.com/modelfleet/modelfleet/rollout"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

func newWorkloadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "workload", Short: "Register, list, release and run workload versions"}
	cmd.AddCommand(newWorkloadBuildCmd(), newWorkloadRegisterCmd(g), newWorkloadListCmd(g), newWorkloadReleaseCmd(g), newWorkloadRunCmd(g))
	return cmd
}

func newWorkloadBuildCmd() *cobra.Command {
	var out, goTool string
	cmd := &cobra.Command{
		Use:   "build <dir> [-o workload.wasm]",
		Short: "Build a workload's Go code into a WebAssembly module (ABI v1)",
		Long: `Build the Go main package in <dir>, written against the guest SDK
(github.com/modelfleet/modelfleet/workload/wasm/guest), into a WebAssembly
module with the standard Go toolchain:

  GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -buildmode=c-shared -trimpath -o <out> <dir>

The module is checked before it is kept (at most 32 MiB, valid WebAssembly,
the ABI v1 exports, WASI imports only) and its digest printed. Register it
with its manifest: modelfleet workload register workload.yaml --module <out>.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			digest, err := workload.BuildModule(cmd.Context(), goTool, args[0], out)
			if err != nil {
				return err
			}
			fmt.Printf("%s  module.digest: %s\n", out, digest)
			fmt.Printf("register it with  modelfleet workload register <workload.yaml> --module %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "workload.wasm", "the module file to write")
	cmd.Flags().StringVar(&goTool, "go", envOr("GO", "go"), "the go command ($GO)")
	return cmd
}

func newWorkloadRegisterCmd(g *globals) *cobra.Command {
	var modulePath, writeBack string
	cmd := &cobra.Command{
		Use:   "register <workload.yaml> [--module workload.wasm]",
		Short: "Register a workload version's manifest (and its WebAssembly module) in the fleet directory",
		Long: `Register a workload version: the manifest is validated and stored
content-addressed (sha256) in the fleet directory. A version is immutable:
registering the same bytes again changes nothing, other bytes are refused.

With --module, the workload's code is that WebAssembly module (modelfleet
workload build): it is checked (size, ABI v1), uploaded content-addressed
to the gateway, where sites download it, and the manifest's module.digest
is filled in (a manifest without module: gets one with the default limits)
or checked against it. --write saves the manifest as registered.

Registering does not deploy it. Release it alone with
"modelfleet workload release <name>:<version>", or with a model version
whose card says "workload: <name>:<version>" (or model register
--workload); either release is refused before any site changes if the
pair's feature schemas differ at any site.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			fc := &fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}
			if modulePath != "" {
				if doc, err = uploadModule(cmd.Context(), fc, args[0], doc, modulePath); err != nil {
					return err
				}
				if writeBack != "" {
					if err := os.WriteFile(writeBack, doc, 0o644); err != nil {
						return err
					}
				}
			}
			// Checked here too, so a bad manifest is reported with its path.
			if _, err := spec.ParseManifest(doc); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			rec, err := fc.RegisterWorkload(cmd.Context(), doc)
			if err != nil {
				return err
			}
			fmt.Printf("workload %s:%s (%s) calls model %s with features %s\n", rec.Name, rec.Version, rec.Digest, rec.Model, strings.Join(rec.Features, ","))
			fmt.Printf("release it alone with  modelfleet workload release %s:%s\n", rec.Name, rec.Version)
			fmt.Printf("or with a model version whose card says  workload: %s:%s\n", rec.Name, rec.Version)
			return nil
		},
	}
	cmd.Flags().StringVar(&modulePath, "module", "", "the workload's WebAssembly module (modelfleet workload build)")
	cmd.Flags().StringVar(&writeBack, "write", "", "with --module: also write the manifest as registered (module.digest filled in) to this file")
	return cmd
}

// uploadModule checks the module at path, fills or checks the manifest's
// module.digest, and uploads the module to the gateway; it returns the
// manifest to register.
func uploadModule(ctx context.Context, fc *fleet.Client, manifestPath string, doc []byte, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > spec.MaxModuleBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than a module may be (%d)", path, fi.Size(), spec.MaxModuleBytes)
	}
	code, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	digest, err := workload.CheckModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc, err = spec.SetModuleDigest(doc, digest); err != nil {
		return nil, fmt.Errorf("%s: %w", manifestPath, err)
	}
	if err := fc.UploadWorkloadModule(ctx, digest, code); err != nil {
		return nil, err
	}
	fmt.Printf("module %s (%d bytes) uploaded\n", digest, len(code))
	return doc, nil
}

func newWorkloadListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered workload versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := (&fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}).Workloads(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(ws)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKLOAD\tVERSION\tMODEL\tDIGEST\tREGISTERED")
			for _, w := range ws {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.Name, w.Version, w.Model, w.Digest, w.RegisteredAt)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newWorkloadReleaseCmd(g *globals) *cobra.Command {
	var model, policy string
	var follow bool
	cmd := &cobra.Command{
		Use:   "release <name>:<version> [--model <model>] [--policy <rollout.yaml>]",
		Short: "Release a workload version alone to the sites of its model",
		Long: `Start the release of one registered workload version alone: the sites of
the model it calls swap to it wave by wave, under the model's rollout
policy (or --policy's: waves, maintenance windows, approval gates, failure
budgets, bakes, criteria), and keep the model versions they serve. It is
refused before any site changes if the workload's features do not match
every model version a planned site serves.

Its workflow is release/<model>/workload/<name>/<version>; follow and
control it with "modelfleet release status|watch|approve|... <model>
--workload <name>:<version>" (or the workflow ID).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := modelfleet.ParseWorkloadRef(args[0])
			if err != nil {
				return err
			}
			rec, err := (&fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}).Workload(cmd.Context(), ref.Name, ref.Version)
			if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
				return fmt.Errorf("workload %s is not registered: run modelfleet workload register <workload.yaml> first", ref)
			}
			if err != nil {
				return err
			}
			if model == "" {
				model = rec.Model
			}
			if model != rec.Model {
				return fmt.Errorf("workload %s calls model %q, not %q", ref, rec.Model, model)
			}
			in := modelfleet.WorkloadReleaseInput{Model: model, Workload: ref}
			if policy != "" {
				doc, err := os.ReadFile(policy)
				if err != nil {
					return err
				}
				if _, err := rollout.Parse(doc); err != nil {
					return fmt.Errorf("%s: %w", policy, err)
				}
				in.Policy = string(doc)
			}
			// Through the gateway, which records who asked (from the
			// token) and gives the release the keys its controls must be
			// signed with.
			body, err := json.Marshal(in)
			if err != nil {
				return err
			}
			var run modelfleet.Run
			if err := httpjson.Do(cmd.Context(), g.http(), "gateway", http.MethodPost, g.gatewayURL+"/api/workload-releases", body, &run); err != nil {
				return err
			}
			fmt.Printf("release %s started (run %s)\n", run.WorkflowID, run.RunID)
			if !follow {
				fmt.Printf("follow it with  modelfleet release watch %s --workload %s\n", model, ref)
				return nil
			}
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return watch(cmd.Context(), orchestrator.New(c), run.WorkflowID, time.Second, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "the model the workload calls (default: the one its manifest names)")
	f.StringVar(&policy, "policy", "", "rollout policy for this release (default: the model's)")
	f.BoolVar(&follow, "watch", false, "follow the release until it ends")
	return cmd
}

// pairWorkload checks, before a model version is registered, that the
// workload version it names is registered and produces the model's
// features, and records it as the model's PropWorkload property. The
// release checks again at every site; this only fails early.
func pairWorkload(ctx context.Context, g *globals, m *modelfleet.Model, ref string) error {
	wr, err := modelfleet.ParseWorkloadRef(ref)
	if err != nil {
		return err
	}
	rec, err := (&fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}).Workload(ctx, wr.Name, wr.Version)
	if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
		return fmt.Errorf("workload %s is not registered: run modelfleet workload register <workload.yaml> first", wr)
	}
	if err != nil {
		return err
	}
	man, err := spec.ParseManifest([]byte(rec.Manifest))
	if err != nil {
		return fmt.Errorf("workload %s: %w", wr, err)
	}
	if err := spec.CheckRelease(man, m.ModelRef, m.Features); err != nil {
		return err
	}
	if m.Properties == nil {
		m.Properties = map[string]string{}
	}
	m.Properties[modelfleet.PropWorkload] = wr.String()
	return nil
}

func newWorkloadRunCmd(g *globals) *cobra.Command {
	r := app.WorkloadRunnerConfig{}
	cmd := &cobra.Command{
		Use:   "run --site <id> --manifest <workload.yaml> [--module workload.wasm] --broker mqtt://host:port --router http://agent:port",
		Short: "Run one site's workload as its own process, supervised, until SIGTERM",
		Long: `Run a workload outside the embedded stack: a manifest naming a WebAssembly
module runs the module file given with --module (refused unless it hashes to
the manifest's module.digest); any other manifest is paired with the feature
code built into this binary (refused if the code cannot serve it). It is then
supervised — started, health-checked, restarted with backoff — on a
persistent MQTT session (QoS 1) until SIGINT or SIGTERM, when it drains:
what it holds is finished and acknowledged, the rest stays on the broker
for the next start. It serves GET /healthz, /decisions and /metrics on
--listen and keeps its bounded record of decisions in --data-dir.

Every flag has an environment variable, for containers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if r.Site == "" {
				return errors.New("--site is required")
			}
			if r.Manifest == "" {
				return errors.New("--manifest is required")
			}
			if r.DataDir == "" {
				r.DataDir = filepath.Join(dataDir(), "workloads", r.Site)
			}
			r.Logger = g.logger()
			w, err := app.OpenWorkloadRunner(r)
			if err != nil {
				return err
			}
			return w.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Site, "site", os.Getenv("MODELFLEET_SITE"), "site id ($MODELFLEET_SITE, required)")
	f.StringVar(&r.Manifest, "manifest", os.Getenv("MODELFLEET_WORKLOAD_MANIFEST"), "the workload's manifest, workload.yaml ($MODELFLEET_WORKLOAD_MANIFEST, required)")
	f.StringVar(&r.Broker, "broker", envOr("MODELFLEET_MQTT_URL", "mqtt://127.0.0.1:1883"), "MQTT broker URL ($MODELFLEET_MQTT_URL)")
	f.StringVar(&r.Router, "router", envOr("MODELFLEET_ROUTER_URL", "http://127.0.0.1:9001"), "the site's inference router ($MODELFLEET_ROUTER_URL)")
	f.StringVar(&r.Module, "module", os.Getenv("MODELFLEET_WORKLOAD_MODULE"), "the WebAssembly module a manifest with module: names ($MODELFLEET_WORKLOAD_MODULE; checked against module.digest)")
	f.StringVar(&r.KeyFile, "key-file", os.Getenv("MODELFLEET_ROUTER_KEY_FILE"), "file holding the router API key for the model ($MODELFLEET_ROUTER_KEY_FILE; none: no key)")
	f.StringVar(&r.Listen, "listen", envOr("MODELFLEET_WORKLOAD_LISTEN", "127.0.0.1:9100"), "health, decisions and metrics listen address ($MODELFLEET_WORKLOAD_LISTEN)")
	f.StringVar(&r.DataDir, "data-dir", "", "where the record of decisions is kept (default $MODELFLEET_DATA_DIR/workloads/<site>)")
	return cmd
}
