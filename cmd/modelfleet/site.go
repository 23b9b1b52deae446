package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
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
	cmd.AddCommand(list, newSiteEnrollCmd(g), newSiteRevokeCmd(g), newSiteAPIKeysCmd(g))
	return cmd
}

func newSiteEnrollCmd(g *globals) *cobra.Command {
	var labels []string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "enroll <site> [--label k=v ...]",
		Short: "Make a one-time join token for a site's agent (admin)",
		Long: `Make a one-time, short-lived join token for a site (role admin). Give it to the
site's agent in $MODELFLEET_JOIN_TOKEN or $MODELFLEET_JOIN_TOKEN_FILE (the edge
chart's Secret): the agent generates its own key, sends a certificate request
and gets its client certificate from the control plane's site CA. The key never
leaves the site. The token carries the CA's fingerprint, so the agent knows the
gateway before it trusts it. Enrolling a revoked site again makes a new token.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := app.JoinTokenRequest{Labels: map[string]string{}}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				req.Labels[k] = v
			}
			body, _ := json.Marshal(req)
			var res app.JoinTokenResponse
			if err := httpjson.Do(cmd.Context(), g.http(), "gateway", http.MethodPost, g.gatewayURL+"/api/sites/"+url.PathEscape(args[0])+"/enroll", body, &res); err != nil {
				return err
			}
			fmt.Println(res.Token)
			fmt.Fprintf(os.Stderr, "join token for %s, valid once until %s\n", res.Site, res.Expires.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&labels, "label", nil, "site label key=value (repeatable), e.g. plant=a")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid (default 1h, at most 168h)")
	return cmd
}

func newSiteRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <site>",
		Short: "Revoke a site's certificates: the gateway refuses it from its next request (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res app.RevokeResponse
			if err := httpjson.Do(cmd.Context(), g.http(), "gateway", http.MethodPost, g.gatewayURL+"/api/sites/"+url.PathEscape(args[0])+"/revoke", nil, &res); err != nil {
				return err
			}
			fmt.Printf("revoked %d certificate(s) of %s\n", res.Revoked, res.Site)
			return nil
		},
	}
}
