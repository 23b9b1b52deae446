package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/orchestrator"
)

func newReleaseCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "release", Short: "Inspect and control releases of model and workload versions"}
	var asJSON bool
	var wl string
	status := &cobra.Command{
		Use:   "status " + releaseArgs,
		Short: "Show a release's state, validation result and per-site progress",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := releaseID(args, wl)
			if err != nil {
				return err
			}
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := orchestrator.New(c).ReleaseStatus(cmd.Context(), id)
			if err != nil {
				return err
			}
			st = g.reported(cmd.Context(), st)
			if asJSON {
				return printJSON(st)
			}
			printStatus(st)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON (overall state in .state)")
	workloadFlag(status, &wl)

	var model string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			rs, err := orchestrator.New(c).ListReleases(cmd.Context(), model, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(rs)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL\tVERSION\tWORKLOAD\tSTATE\tSTARTED\tWORKFLOW")
			for _, r := range rs {
				version, w := r.Model.Version, "-"
				if r.Workload != nil {
					version, w = "-", r.Workload.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Model.Name, version, w, r.State, r.StartedAt.Local().Format(time.DateTime), r.Workflow)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	list.Flags().StringVar(&model, "model", "", "only releases of this model")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many releases (0: all)")
	cmd.AddCommand(status, list, newWatchCmd(g))
	cmd.AddCommand(newControlCmds(g)...)
	return cmd
}

// releaseArgs is how every release command names its release.
const releaseArgs = "<model> <version> | <model> --workload <name>:<version> | <workflow-id>"

// workloadFlag adds --workload, which names a workload release.
func workloadFlag(cmd *cobra.Command, wl *string) {
	cmd.Flags().StringVar(wl, "workload", "", "the release of this workload version (name:version) alone, to <model>")
}

// releaseID is the workflow ID the arguments name: a model version's
// release, a workload version's (<model> --workload name:version), or the
// ID itself (release/...).
func releaseID(args []string, wl string) (string, error) {
	switch {
	case wl != "" && len(args) == 1:
		ref, err := modelfleet.ParseWorkloadRef(wl)
		if err != nil {
			return "", err
		}
		if err := modelfleet.ValidateName("model name", args[0]); err != nil {
			return "", err
		}
		return modelfleet.WorkloadReleaseWorkflowID(args[0], ref), nil
	case wl != "":
		return "", fmt.Errorf("with --workload, name the model only: %s", releaseArgs)
	case len(args) == 2:
		ref := modelfleet.ModelRef{Name: args[0], Version: args[1]}
		return modelfleet.ReleaseWorkflowID(ref), ref.Validate()
	case strings.HasPrefix(args[0], "release/"):
		return args[0], nil
	}
	return "", fmt.Errorf("name a release: %s", releaseArgs)
}

func printStatus(st modelfleet.ReleaseStatus) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Release\t%s\n", st.WorkflowID())
	if st.Workload != nil {
		fmt.Fprintf(tw, "Workload\t%s\t(alone: the sites keep their versions of %s)\n", st.Workload, st.Model.Name)
	} else {
		fmt.Fprintf(tw, "Model\t%s\t%s\n", st.Model, st.Digest)
	}
	fmt.Fprintf(tw, "State\t%s\n", st.State)
	if st.Reason != "" {
		fmt.Fprintf(tw, "Reason\t%s\n", st.Reason)
	}
	if v := st.Validation; v != nil {
		verdict := "passed"
		if !v.Passed {
			verdict = "FAILED"
		}
		line := verdict
		if v.Metric != "" {
			line = fmt.Sprintf("%s %.4f (threshold %.4f, %d rows): %s", v.Metric, v.Value, v.Threshold, v.Rows, verdict)
		}
		if v.Note != "" {
			line += " — " + v.Note
		}
		fmt.Fprintf(tw, "Validation\t%s\n", line)
	}
	if st.Gate != nil {
		fmt.Fprintf(tw, "Gate\twaiting for approval after wave %q until %s (then %s)\n", st.Gate.After, st.Gate.Deadline, st.Gate.OnTimeout)
	}
	for _, c := range st.Controls {
		fmt.Fprintf(tw, "Control\t%s by %s at %s: %s\n", c.Action, c.By, c.At, c.Reason)
	}
	tw.Flush()
	if len(st.Waves) > 0 {
		fmt.Println()
		fmt.Print(renderWaves(st))
	}
	if len(st.Sites) == 0 {
		return
	}
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tWAVE\tSTATE\tUPDATED\tREASON")
	for _, s := range st.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Site, s.Wave, s.State, s.UpdatedAt, s.Reason)
	}
	tw.Flush()
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reported returns st with each site's state as its own report shows it
// (ReleaseStatus.WithReports): the release changes a site's state only
// when its batch completes, so a site serving the new version for a
// minute would read "deploying". The sites come from the gateway; without
// it, the release's own view, with a note on stderr.
func (g *globals) reported(ctx context.Context, st modelfleet.ReleaseStatus) modelfleet.ReleaseStatus {
	sites, err := (&fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}).List(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "per-site states are the release's own (the sites' reports are unavailable: %v)\n", err)
		return st
	}
	byID := make(map[string]modelfleet.Site, len(sites))
	for _, s := range sites {
		byID[s.ID] = s
	}
	return st.WithReports(byID)
}
