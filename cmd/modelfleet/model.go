package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/registry"
	"github.com/modelfleet/modelfleet/rollout"
)

func newModelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Register and inspect model versions in the embedded registry"}
	cmd.AddCommand(newModelRegisterCmd(g), newModelListCmd(g), newModelPackCmd())
	return cmd
}

func newModelRegisterCmd(g *globals) *cobra.Command {
	var (
		m                        modelfleet.Model
		file, card, data, metric string
		policy                   string
		threshold                float64
		tags                     []string
		wref                     string
	)
	cmd := &cobra.Command{
		Use:   "register --name <model> --version <v> --file <model file, MLflow directory or model server directory>",
		Short: "Register a model version; its ModelRegistered event starts the release",
		Long: `Register a model version in the embedded registry. The registry stores the
artifact content-addressed (sha256) and delivers Azure ML's ModelRegistered event to
the gateway, which starts the release: validate, then deploy to every site.

The model card (model.yaml beside the file, or --card) declares the format, the
feature schema and the validation set, metric and threshold; flags override it.

--file may be an MLflow model directory (one holding MLmodel): it is packed
into one archive with sorted entries and no times or owners, so the same
directory always has the same digest, and registered with format mlflow; a
card without features takes them from the MLmodel signature.
Its workload key (or --workload name:version) names the registered workload
version the release carries to the sites with the model.

A version served by an external model server (card: format oip and a server
block) registers its model directory: --file names the directory, packed
here as a tar.gz archive (docs/models.md, "External model servers").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--file is required")
			}
			file = filepath.Clean(file)
			c, err := loadCard(card, file)
			if err != nil {
				return err
			}
			m.Format, m.Features, m.Tags, m.Properties = c.Format, c.Features, c.Tags, c.Properties
			if p := c.ServerProperty(); p != "" {
				if m.Properties == nil {
					m.Properties = map[string]string{}
				}
				m.Properties[modelfleet.PropServer] = p
			}
			for f, u := range c.Units {
				if m.Properties == nil {
					m.Properties = map[string]string{}
				}
				m.Properties[modelfleet.PropUnitPrefix+f] = u
			}
			if f := cmd.Flags(); f.Changed("format") || m.Format == "" {
				m.Format, _ = f.GetString("format")
			}
			if info, err := os.Stat(file); err == nil && info.IsDir() && m.Format == modelfleet.FormatOIP {
				// An external model server's model directory: registered
				// as its packed archive.
				packed, err := packModelDir(file)
				if err != nil {
					return err
				}
				defer os.Remove(packed)
				file = packed
			} else if err == nil && info.IsDir() {
				// An MLflow model directory is packed into one archive: the
				// artifact the registry stores and every site downloads.
				if m.Format == modelfleet.FormatLightGBM && !cmd.Flags().Changed("format") && c.Format == "" {
					m.Format = modelfleet.FormatMLflow
				}
				tmp, err := os.MkdirTemp("", "modelfleet-mlflow-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				if file, err = packMLflow(file, tmp, &m); err != nil {
					return err
				}
			}
			if c.Validation != nil {
				m.Validation = &modelfleet.ValidationSpec{Metric: c.Validation.Metric, Threshold: c.Validation.Threshold}
				if data == "" {
					data = c.Validation.Data
				}
			}
			if metric != "" || cmd.Flags().Changed("threshold") {
				if m.Validation == nil {
					m.Validation = &modelfleet.ValidationSpec{Metric: modelfleet.MetricAUC}
				}
				if metric != "" {
					m.Validation.Metric = metric
				}
				if cmd.Flags().Changed("threshold") {
					m.Validation.Threshold = threshold
				}
			}
			if m.Validation != nil && data == "" {
				return errors.New("validation is declared but no validation data: pass --validation-data or set validation.data in the model card")
			}
			for _, t := range tags {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return fmt.Errorf("--tag %q: want key=value", t)
				}
				if m.Tags == nil {
					m.Tags = map[string]string{}
				}
				m.Tags[k] = v
			}
			if err := m.ModelRef.Validate(); err != nil {
				return err
			}
			if !cmd.Flags().Changed("workload") {
				wref = c.Workload
			}
			if wref != "" {
				if err := pairWorkload(cmd.Context(), g, &m, wref); err != nil {
					return err
				}
			}
			// The rollout policy is checked and stored before the model is
			// registered: the registration's event starts the release, which
			// reads it. A bad policy stops here, with nothing registered.
			if policy == "" {
				if p := filepath.Join(filepath.Dir(file), policyFile); fileExists(p) {
					policy = p
				}
			}
			if policy != "" {
				if err := putPolicy(cmd.Context(), g, m.Name, policy); err != nil {
					return err
				}
			}
			rc := &registry.Client{BaseURL: g.registryURL, HTTPClient: g.http()}
			got, created, err := rc.Register(cmd.Context(), m, file, data)
			if err != nil {
				return err
			}
			if created {
				fmt.Printf("registered %s (%s); its ModelRegistered event starts release %s\n", got.ModelRef, got.Digest, modelfleet.ReleaseWorkflowID(got.ModelRef))
			} else {
				fmt.Printf("%s is already registered with the same content (%s): no new release\n", got.ModelRef, got.Digest)
			}
			fmt.Printf("follow it: bin/modelfleet release status %s %s\n", got.Name, got.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&m.Name, "name", "", "model name (required)")
	f.StringVar(&m.Version, "version", "", "model version (required)")
	f.StringVar(&file, "file", "", "model file, or MLflow model directory (required)")
	f.StringVar(&card, "card", "", "model card (default: model.yaml beside --file, if present)")
	f.StringVar(&policy, "policy", "", "rollout policy (default: rollout.yaml beside --file, if present; else the model keeps its policy, or the default)")
	f.String("format", modelfleet.FormatLightGBM, "model format: "+strings.Join(modelfleet.Formats, ", ")+" (an MLflow directory: mlflow)")
	f.StringVar(&data, "validation-data", "", "labelled CSV to validate on (overrides the card)")
	f.StringVar(&metric, "metric", "", "validation metric: auc, accuracy or f1 (overrides the card)")
	f.Float64Var(&threshold, "threshold", 0, "lowest acceptable metric value (overrides the card)")
	f.StringArrayVar(&tags, "tag", nil, "tag key=value (repeatable)")
	f.StringVar(&wref, "workload", "", "workload name:version released with this model version (overrides the card's workload)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

// loadCard reads the explicit card, or model.yaml beside the model file when
// there is one; no card at all is fine (flags say everything).
func loadCard(explicit, file string) (app.ModelCard, error) {
	path := explicit
	if path == "" {
		path = filepath.Join(filepath.Dir(file), app.ModelCardFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return app.ModelCard{}, nil
		}
	}
	c, err := app.ReadModelCard(path)
	if err != nil || explicit != "" {
		return c, err
	}
	// The card beside the file describes another format than the file is
	// (examples/bearing-failure: model.yaml describes model.txt, and
	// model.json has model-xgboost.yaml): the one card in the directory
	// for the file's format, if there is exactly one.
	if other, ok := cardForContent(file, c); ok {
		return other, nil
	}
	return c, nil
}

// cardForContent finds, beside file, the one other model card (*.yaml)
// whose format is what file's content is, when the default card c names
// another format.
func cardForContent(file string, c app.ModelCard) (app.ModelCard, bool) {
	f, err := os.Open(file)
	if err != nil {
		return c, false
	}
	head := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, head)
	f.Close()
	detected, _ := inference.Detect(head[:n])
	if detected == "" || c.Format == "" || c.Format == detected {
		return c, false
	}
	cards, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "*.yaml"))
	var found []app.ModelCard
	var names []string
	for _, p := range cards {
		if filepath.Base(p) == app.ModelCardFile {
			continue
		}
		if oc, err := app.ReadModelCard(p); err == nil && oc.Format == detected {
			found, names = append(found, oc), append(names, p)
		}
	}
	if len(found) != 1 {
		return c, false
	}
	fmt.Printf("%s is a %s model and %s describes a %s one: using the card %s (pass --card to choose)\n",
		file, detected, app.ModelCardFile, c.Format, names[0])
	return found[0], true
}

func newModelListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered model versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc := &registry.Client{BaseURL: g.registryURL, HTTPClient: g.http()}
			ms, err := rc.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(ms)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL\tVERSION\tFORMAT\tDIGEST\tCREATED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Version, m.Format, m.Digest, m.CreatedAt)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// policyFile is the rollout policy `model register` reads beside a model file.
const policyFile = "rollout.yaml"

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func putPolicy(ctx context.Context, g *globals, model, path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if _, err := rollout.Parse(doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := (&fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}).PutPolicy(ctx, model, doc); err != nil {
		return fmt.Errorf("store rollout policy %s: %w", path, err)
	}
	fmt.Printf("rollout policy for %s: %s\n", model, path)
	return nil
}

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Show or set a model's rollout policy"}
	cmd.AddCommand(&cobra.Command{
		Use:   "set <model> <policy.yaml>",
		Short: "Validate and store a model's rollout policy",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return putPolicy(cmd.Context(), g, args[0], args[1])
		},
	}, &cobra.Command{
		Use:   "show <model>",
		Short: "Print a model's rollout policy (the default when it has none)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := (&fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}).Policy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(p)
		},
	})
	return cmd
}
