package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/httpjson"
)

func newMonitorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "monitor", Short: "What the drift monitor sees: each site's latest verdict per model version"}
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "The latest verdict of every site, model and version (drift, data quality, errors, latency)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			var rep app.MonitorReport
			if err := httpjson.Do(ctx, g.http(), "monitor", http.MethodGet, strings.TrimRight(g.gatewayURL, "/")+"/api/monitor", nil, &rep); err != nil {
				return err
			}
			if asJSON {
				return printJSON(rep)
			}
			s := rep.Stats
			fmt.Printf("signal messages: %d received, %d evaluated, %d duplicates, %d late, %d dead-lettered; %d verdicts notified\n\n",
				s.Received, s.Evaluated, s.Duplicates, s.Late, s.Rejected, s.Notified)
			if len(rep.Verdicts) == 0 {
				fmt.Println("no verdicts yet: sites send a signal message per model version every window")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SITE\tMODEL\tVERSION\tWINDOW END\tROWS\tERRORS\tP99 MS\tVERDICT\tREASON")
			for _, v := range rep.Verdicts {
				verdict := "ok"
				switch {
				case v.Insufficient && len(v.Features) == 0:
					verdict = "collecting" // too few rows, or the site's reference is filling
				case v.Insufficient:
					verdict = "too few rows"
				case v.Drifted():
					verdict = "DRIFT"
				case v.QualityBreached:
					verdict = "data quality"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%.1f\t%s\t%s\n", v.Site, v.Model, v.Version,
					v.WindowEnd.UTC().Format(time.RFC3339), v.Scored, v.Errors, v.P99LatencyMs, verdict, v.Reason)
			}
			return tw.Flush()
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the full verdicts (every feature's metrics) as JSON")
	cmd.AddCommand(status)
	return cmd
}
