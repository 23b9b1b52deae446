package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/fleet"
)

func newSiteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "site", Short: "Inspect the fleet's sites"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List sites, their router URLs and what each serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := &fleet.Client{BaseURL: g.gatewayURL, HTTPClient: g.http()}
			sites, err := c.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(sites)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SITE\tROUTER\tSERVING\tLAST SEEN")
			for _, s := range sites {
				serving := make([]string, len(s.Serving))
				for i, m := range s.Serving {
					serving[i] = m.ModelRef.String()
				}
				if len(serving) == 0 {
					serving = []string{"-"}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.RouterURL, strings.Join(serving, ","), s.LastSeen)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}
