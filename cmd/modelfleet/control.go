package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/orchestrator"
)

// controlHelp says what each control does, for --help.
var controlHelp = map[string]string{
	modelfleet.SignalApprove:  "Approve the release at its current approval gate",
	modelfleet.SignalReject:   "Reject the release at its gate: every touched site rolls back",
	modelfleet.SignalPause:    "Pause after the current step (resume continues)",
	modelfleet.SignalResume:   "Resume a paused release",
	modelfleet.SignalAbort:    "Stop the release where it is; sites keep their current traffic",
	modelfleet.SignalRollback: "Roll every touched site back to its previous versions and weights",
	modelfleet.SignalSkipBake: "End the current bake now (recorded)",
}

func newControlCmds(g *globals) []*cobra.Command {
	var cmds []*cobra.Command
	for _, action := range modelfleet.Signals {
		var reason, wl string
		var printSignal bool
		cmd := &cobra.Command{
			Use:   action + " " + releaseArgs + " --reason <why>",
			Short: controlHelp[action],
			Long: controlHelp[action] + `.

The control goes through the gateway, which checks your identity and role
(an approver only for the sites in its scope) and signs it; the release
verifies that signature and records who you are. A control signalled to
Temporal directly, without the gateway's signature, is refused and
recorded as refused. With --print-signal the gateway signs but does not
send: paste the printed JSON as the input of the "` + action + `" signal in
the Temporal UI or ` + "`temporal workflow signal`" + `; the release accepts it once,
within 15 minutes.`,
			Args: cobra.RangeArgs(1, 2),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := releaseID(args, wl)
				if err != nil {
					return err
				}
				if strings.TrimSpace(reason) == "" {
					return errors.New("--reason is required: it is recorded in the release's history")
				}
				body, err := json.Marshal(app.ControlRequest{Release: id, Action: action, Reason: reason, PrintSignal: printSignal})
				if err != nil {
					return err
				}
				var res app.ControlResponse
				if err := httpjson.Do(cmd.Context(), g.http(), "gateway", http.MethodPost, g.gatewayURL+"/api/controls", body, &res); err != nil {
					return fmt.Errorf("%s %s: %w", action, id, err)
				}
				if printSignal {
					out, _ := json.MarshalIndent(res.Signal, "", "  ")
					fmt.Printf("%s\n", out)
					fmt.Fprintf(os.Stderr, "signed for %s as %s (%s); signal %q of workflow %s with it\n", action, res.By, res.Role, action, id)
					return nil
				}
				fmt.Printf("%s sent to %s by %s (%s)\n", action, id, res.By, res.Role)
				return nil
			},
		}
		cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the workflow history)")
		cmd.Flags().BoolVar(&printSignal, "print-signal", false, "print the signed signal payload instead of sending it (for the Temporal UI or `temporal workflow signal`)")
		workloadFlag(cmd, &wl)
		cmds = append(cmds, cmd)
	}
	return cmds
}

func newWatchCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var wl string
	cmd := &cobra.Command{
		Use:   "watch " + releaseArgs,
		Short: "Follow a release live: progress per wave until it ends",
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
			return watch(cmd.Context(), orchestrator.New(c), id, interval, g.reported)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "refresh interval")
	workloadFlag(cmd, &wl)
	return cmd
}

// watch draws the release's waves every interval until it ends, with
// each site's state as reported says (nil: the release's own).
func watch(ctx context.Context, o modelfleet.Orchestrator, id string, every time.Duration, reported func(context.Context, modelfleet.ReleaseStatus) modelfleet.ReleaseStatus) error {
	tty := isTerminal()
	last := ""
	for {
		st, err := o.ReleaseStatus(ctx, id)
		if err != nil {
			return err
		}
		if reported != nil {
			st = reported(ctx, st)
		}
		view := renderWaves(st)
		if view != last {
			if tty {
				fmt.Print("\033[H\033[2J")
			}
			fmt.Print(view)
			last = view
		}
		if terminal(st.State) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func terminal(state string) bool {
	switch state {
	case modelfleet.StateSucceeded, modelfleet.StateFailed, modelfleet.StateAborted, modelfleet.StateRolledBack, "terminated", "canceled", "timed-out":
		return true
	}
	return false
}

// renderWaves draws one progress bar per wave.
func renderWaves(st modelfleet.ReleaseStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s", st.WorkflowID(), strings.ToUpper(st.State))
	if st.Reason != "" {
		fmt.Fprintf(&b, "  (%s)", st.Reason)
	}
	b.WriteString("\n")
	if g := st.Gate; g != nil {
		target := st.Model.Name + " " + st.Model.Version
		if st.Workload != nil {
			target = st.Model.Name + " --workload " + st.Workload.String()
		}
		fmt.Fprintf(&b, "  waiting for approval after %q until %s (then %s): modelfleet release approve %s --reason ...\n", g.After, g.Deadline, g.OnTimeout, target)
	}
	for _, w := range st.Waves {
		done := w.Counts[modelfleet.SiteHealthy] + w.Counts[modelfleet.SiteFailed] + w.Counts[modelfleet.SiteRolledBack]
		const width = 30
		filled := 0
		if w.Sites > 0 {
			filled = done * width / w.Sites
		}
		bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
		fmt.Fprintf(&b, "  %-12s [%s] %d/%d", w.Name, bar, done, w.Sites)
		for _, k := range []string{modelfleet.SiteHealthy, modelfleet.SiteDeploying, modelfleet.SiteBaking, modelfleet.SiteWaitingForWindow, modelfleet.SiteFailed, modelfleet.SiteRolledBack} {
			if n := w.Counts[k]; n > 0 {
				fmt.Fprintf(&b, "  %s=%d", k, n)
			}
		}
		// Sites of the wave that report serving the version already,
		// before their batch completes.
		serving := 0
		for _, s := range st.Sites {
			if s.Wave == w.Name && s.State == modelfleet.SiteServing {
				serving++
			}
		}
		if serving > 0 {
			fmt.Fprintf(&b, "  serving=%d (reported)", serving)
		}
		if w.Weight > 0 && w.State == modelfleet.SiteDeploying {
			fmt.Fprintf(&b, "  step %d%%", w.Weight)
		}
		if w.BakeUntil != "" {
			fmt.Fprintf(&b, "  bake until %s", w.BakeUntil)
		}
		if w.WindowUntil != "" {
			fmt.Fprintf(&b, "  window opens %s", w.WindowUntil)
		}
		if w.Failed > 0 {
			fmt.Fprintf(&b, "  failures %d/%d budget", w.Failed, w.Budget)
		}
		b.WriteString("\n")
		renderAnalyses(&b, w.Analyses)
	}
	return b.String()
}

// renderAnalyses lists a wave's bake analyses: per bake its window and
// verdict, per criterion the value measured over the window, the
// threshold, the samples against their minimum, and the verdict.
func renderAnalyses(b *strings.Builder, as []modelfleet.BakeAnalysis) {
	for _, a := range as {
		fmt.Fprintf(b, "    bake at %d%% on %d sites, %s to %s: %s", a.Step, a.Sites, a.From, orDash(a.To), strings.ToUpper(a.Verdict))
		if a.Extended > 0 {
			fmt.Fprintf(b, " (extended %d×)", a.Extended)
		}
		if a.Outcome != "" {
			fmt.Fprintf(b, " — %s", a.Outcome)
		}
		b.WriteString("\n")
		for _, c := range a.Criteria {
			op := "<="
			if c.Name == "quality" {
				op = ">="
			}
			fmt.Fprintf(b, "      %-16s %10.4g  want %s %-8g  samples %d (min %d)  %s", c.Name, c.Value, op, c.Threshold, c.Samples, c.MinSamples, c.Verdict)
			if c.Note != "" && c.Verdict != modelfleet.VerdictPass {
				fmt.Fprintf(b, ": %s", c.Note)
			}
			b.WriteString("\n")
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func isTerminal() bool {
	fi, err := os.Stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
