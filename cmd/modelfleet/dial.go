package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet/telemetry"
)

// dial connects the operator CLI to Temporal. The CLI logs nothing of the
// SDK's own chatter unless asked to.
func (g *globals) dial(ctx context.Context) (client.Client, error) {
	var logger *slog.Logger
	if g.logLevel == "debug" {
		logger = g.logger()
	} else {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return g.temporal().Dial(ctx, logger)
}

// logger builds the process logger from the global flags.
func (g *globals) logger() *slog.Logger {
	l, err := telemetry.NewLogger(os.Stderr, g.logLevel, g.logJSON)
	if err != nil {
		l = slog.New(slog.NewTextHandler(os.Stderr, nil))
		l.Warn("bad log level, using info", "error", err)
	}
	return l
}
