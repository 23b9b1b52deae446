package agent

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/httpjson"
	"github.com/modelfleet/modelfleet/inference"
)

// ServeOIP is `modelfleet oip-serve`: a minimal model server that serves
// one model file of a built-in format over the Open Inference Protocol
// (the router's own V2 endpoints) on a loopback port, until ctx is done.
// It is what a site may declare as an external model server where no
// Triton or MLServer is installed, and what the tests of external servers
// start as a real process. Arguments:
//
//	--port N          loopback port (required)
//	--model-dir DIR   the unpacked model directory (default .)
//	--model NAME      the model's name in the server (required)
//	--file FILE       the model file in DIR (default model.json)
//	--features a,b,c  feature names (default: the file's own)
func ServeOIP(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("oip-serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 0, "loopback port")
	dir := fs.String("model-dir", ".", "model directory")
	name := fs.String("model", "", "model name in the server")
	file := fs.String("file", "model.json", "model file in the model directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port <= 0 || *port > 65535 || modelfleet.ValidateName("model name", *name) != nil {
		return fmt.Errorf("oip-serve: --port and a valid --model are required")
	}
	path := filepath.Join(*dir, filepath.Clean("/"+*file))
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("oip-serve: %w", err)
	}
	m, err := inference.Load("", data)
	if err != nil {
		return fmt.Errorf("oip-serve: %s: %w", path, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	r := edge.NewRouter("oip-serve", inference.Vector, log)
	defer r.Close()
	r.Swap(edge.LoadedModel{Model: modelfleet.ModelRef{Name: *name, Version: "1"}, Format: m.Format(), Features: m.FeatureNames(), Scorer: m, LoadedAt: time.Now()})
	srv, err := httpjson.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)), r.Handler())
	if err != nil {
		return fmt.Errorf("oip-serve: %w", err)
	}
	srv.Start(log, "oip-serve")
	log.Info("serving over the Open Inference Protocol", "url", srv.URL(), "model", *name, "features", len(m.FeatureNames()))
	<-ctx.Done()
	srv.Close()
	return nil
}
