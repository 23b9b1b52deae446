package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/simulate"
)

func newSimulateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "simulate", Short: "Drive the factory-line simulator: sensor streams, failures, drift"}
	cmd.AddCommand(newSimulateLineCmd(g), newSimulateDriftCmd(), newSimulateFailCmd())
	return cmd
}

func newSimulateLineCmd(g *globals) *cobra.Command {
	cfg := simulate.Config{}
	var listen string
	cmd := &cobra.Command{
		Use:   "line --site <site>",
		Short: "Publish a line's sensor streams (vibration, temperature, speed) to MQTT (make run starts one per site)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Site == "" {
				return errors.New("--site is required")
			}
			cfg.Logger = g.logger()
			line, err := simulate.New(cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := httpjson.NewServer(ln, line.Handler())
			srv.Start(slog.Default(), "line simulator")
			defer srv.Close()
			fmt.Printf("simulating %s on %s; control API http://%s (POST /drift, POST /fail)\n", cfg.Site, cfg.Broker, ln.Addr())
			return line.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Site, "site", "", "site id (required)")
	f.StringVar(&cfg.Broker, "broker", "mqtt://127.0.0.1:1883", "MQTT broker")
	f.Float64Var(&cfg.Rate, "rate", 10, "readings per second for the whole line")
	f.IntVar(&cfg.Machines, "machines", 5, "machines on the line")
	f.Float64Var(&cfg.BadRate, "bad-rate", 0, "share of readings sent malformed (exercises dead-lettering)")
	f.StringVar(&listen, "listen", "127.0.0.1:0", "control API address")
	return cmd
}

// simulatorURL is where the embedded stack runs site-N's simulator.
func simulatorURL(site, explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(site, "site-"))
	if err != nil || !strings.HasPrefix(site, "site-") || n < 1 {
		return "", fmt.Errorf("site %q is not one of the embedded stack's site-N: pass --simulator-url", site)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", 9100+n), nil
}

func newSimulateDriftCmd() *cobra.Command {
	var site, model, url string
	var shift float64
	cmd := &cobra.Command{
		Use:   "drift --site <site> --model <model> --shift <x>",
		Short: "Shift a site's input distribution (0 stops the drift)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := simulatorURL(site, url)
			if err != nil {
				return err
			}
			if err := (&simulate.Client{BaseURL: u}).SetDrift(cmd.Context(), model, shift); err != nil {
				return err
			}
			fmt.Printf("drift %.2f set on %s's line for %s\n", shift, site, model)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "site id (required)")
	f.StringVar(&model, "model", "bearing-failure", "model whose inputs drift")
	f.Float64Var(&shift, "shift", 0.5, "how far to shift the inputs (0: none)")
	f.StringVar(&url, "simulator-url", "", "simulator control API (default: the embedded stack's, for site-N)")
	return cmd
}

func newSimulateFailCmd() *cobra.Command {
	var site, machine, url string
	var repair bool
	cmd := &cobra.Command{
		Use:   "fail --site <site> --machine <machine>",
		Short: "Make a machine's bearing start failing (--repair ends it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := simulatorURL(site, url)
			if err != nil {
				return err
			}
			return (&simulate.Client{BaseURL: u}).Fail(cmd.Context(), machine, !repair)
		},
	}
	f := cmd.Flags()
	f.StringVar(&site, "site", "", "site id (required)")
	f.StringVar(&machine, "machine", "", "machine id (see GET <simulator>/api/line)")
	f.BoolVar(&repair, "repair", false, "end the failure")
	f.StringVar(&url, "simulator-url", "", "simulator control API (default: the embedded stack's, for site-N)")
	return cmd
}
