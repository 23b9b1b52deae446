package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/queue"
)

func newQueueCmd(g *globals) *cobra.Command {
	var name string
	client := func() *queue.Client { return &queue.Client{BaseURL: g.gatewayURL, Queue: name, HTTPClient: g.http()} }
	cmd := &cobra.Command{Use: "queue", Short: "Inspect and re-drive the embedded signal queue (Service Bus semantics)"}
	cmd.PersistentFlags().StringVar(&name, "queue", "signals", "queue name")

	stats := &cobra.Command{
		Use:   "stats",
		Short: "Active, locked and dead-lettered message counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := client().Stats(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(s)
		},
	}
	var from int64
	var max int
	var dead bool
	peek := &cobra.Command{
		Use:   "peek",
		Short: "Show messages without locking them (--dead-letter for the dead-letter sub-queue)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ms, err := client().Peek(cmd.Context(), from, max, dead)
			if err != nil {
				return err
			}
			return printJSON(ms)
		},
	}
	peek.Flags().Int64Var(&from, "from", 0, "first sequence number")
	peek.Flags().IntVar(&max, "max", 10, "at most this many messages (up to 100)")
	peek.Flags().BoolVar(&dead, "dead-letter", false, "peek the dead-letter sub-queue")
	var rmax int
	redrive := &cobra.Command{
		Use:   "redrive",
		Short: "Move dead-lettered messages back to the queue (delivery count reset)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := client().Redrive(cmd.Context(), rmax)
			if err != nil {
				return err
			}
			fmt.Printf("redriven %d messages\n", n)
			return nil
		},
	}
	redrive.Flags().IntVar(&rmax, "max", 0, "at most this many (0: all)")
	cmd.AddCommand(stats, peek, redrive)
	return cmd
}
