package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/modelfleet/modelfleet/orchestrator"
)

// TemporalVersion is the Temporal CLI the Makefile builds from the Go module
// proxy (github.com/temporalio/cli/cmd/temporal@TemporalVersion) into
// bin/tools/temporal. Pinned: its dev server's flags are part of our contract.
const TemporalVersion = "v1.5.1"

// TemporalServer is a Temporal CLI dev server run as a child process: the
// embedded stack's orchestrator, with its SQLite file in the data dir.
type TemporalServer struct {
	Address string // frontend host:port
	UIURL   string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // its exit status, once exited is closed
}

// PID is the dev server's process ID.
func (s *TemporalServer) PID() int { return s.cmd.Process.Pid }

// TemporalOptions configures StartTemporal.
type TemporalOptions struct {
	Binary  string // path to the temporal CLI; see FindTemporal
	DataDir string // temporal.db and temporal.log live here
	IP      string // default 127.0.0.1
	Port    int    // frontend gRPC (default 7233)
	UIPort  int    // web UI (default 8233)
	Logger  *slog.Logger
}

// FindTemporal locates the Temporal CLI: $MODELFLEET_TEMPORAL_BIN, then
// tools/temporal beside the running executable (where `make build` puts it),
// then bin/tools/temporal under the working directory, then $PATH.
func FindTemporal() (string, error) {
	if p := os.Getenv("MODELFLEET_TEMPORAL_BIN"); p != "" {
		return p, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "tools", "temporal"))
	}
	candidates = append(candidates, filepath.Join("bin", "tools", "temporal"))
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("temporal CLI not found: run `make tools` (builds github.com/temporalio/cli/cmd/temporal@" + TemporalVersion + " into bin/tools) or set MODELFLEET_TEMPORAL_BIN")
}

// errExitedEarly: the dev server stopped before it answered, as when its
// port is taken.
var errExitedEarly = errors.New("dev server exited before it was ready")

// StartTemporal starts the dev server and waits until its frontend answers.
// SQLite runs in WAL mode (measured ~3x faster than the default rollback
// journal for Temporal's write pattern) and the custom search attributes are
// registered on every start (the dev server skips ones that exist).
func StartTemporal(ctx context.Context, o TemporalOptions) (*TemporalServer, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 7233
	}
	if o.UIPort == 0 {
		o.UIPort = 8233
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("temporal: data dir: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(o.DataDir, "temporal.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("temporal: log file: %w", err)
	}
	args := []string{"server", "start-dev",
		"--ip", o.IP, "--port", strconv.Itoa(o.Port), "--ui-port", strconv.Itoa(o.UIPort),
		"--db-filename", filepath.Join(o.DataDir, "temporal.db"),
		"--sqlite-pragma", "journal_mode=wal",
		"--log-level", "warn",
	}
	for _, sa := range orchestrator.SearchAttributeTypes() {
		args = append(args, "--search-attribute", sa)
	}
	cmd := exec.Command(o.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If we die without cleaning up, the kernel stops the server too, so a
	// crashed `make run` never leaves port 7233 taken.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("temporal: start %s: %w", o.Binary, err)
	}
	s := &TemporalServer{
		Address: fmt.Sprintf("%s:%d", o.IP, o.Port),
		UIURL:   fmt.Sprintf("http://%s:%d", o.IP, o.UIPort),
		cmd:     cmd,
		exited:  make(chan struct{}),
	}
	go func() { s.waitErr = cmd.Wait(); logf.Close(); close(s.exited) }()
	if err := s.waitReady(ctx, 2*time.Minute); err != nil {
		s.Close()
		return nil, fmt.Errorf("temporal: %w (see %s)", err, filepath.Join(o.DataDir, "temporal.log"))
	}
	if o.Logger != nil {
		o.Logger.Info("temporal dev server ready", "address", s.Address, "ui", s.UIURL, "pid", cmd.Process.Pid)
	}
	return s, nil
}

func (s *TemporalServer) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w: %v", errExitedEarly, s.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		c, err := client.Dial(client.Options{HostPort: s.Address, Logger: quietLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dev server not ready after %s: %v", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Close stops the dev server gracefully (SIGTERM, then SIGKILL after 10s).
func (s *TemporalServer) Close() error {
	if s.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	return nil
}

// Kill stops the dev server at once (SIGKILL to its process group), as a
// crash would: the chaos suite's way to restart Temporal mid-wave. Its
// SQLite file survives for the next StartTemporal on the same DataDir.
func (s *TemporalServer) Kill() {
	if s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// quietLogger drops the SDK's connection-retry noise while we poll for
// readiness.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
