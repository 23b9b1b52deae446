package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/modelfleet/modelfleet/orchestrator"
)

var quietLogger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// reserved are ports a smoke test on this machine may be using.
var reserved = []int{7233, 8233, 8080, 8081, 9001, 9002, 9003, 9004, 9005, 9006, 9007, 9008, 9009, 9010}

// freePort asks the kernel for an unused loopback port outside reserved.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !slices.Contains(reserved, p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}

// devServer is a Temporal CLI dev server on free ports with its SQLite file
// in dir and modelfleet's search attributes registered.
type devServer struct {
	addr string
	cmd  *exec.Cmd
}

func startDevServer(ctx context.Context, bin, dir string, memory bool) (*devServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	uiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev", "--headless",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--ui-port", strconv.Itoa(uiPort), "--log-level", "error"}
	if !memory {
		args = append(args, "--db-filename", filepath.Join(dir, "temporal.db"), "--sqlite-pragma", "journal_mode=wal")
	}
	for _, sa := range orchestrator.SearchAttributeTypes() {
		args = append(args, "--search-attribute", sa)
	}
	log, err := os.Create(filepath.Join(dir, "temporal.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	// The server dies with the benchmark, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &devServer{addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd}
	// A busy shared machine can take long to start it.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := client.DialContext(ctx, client.Options{HostPort: s.addr, Logger: quietLogger})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("temporal dev server not ready after two minutes (see %s): %w", log.Name(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *devServer) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// audit counts what Temporal holds for the workflow IDs a phase had
// acknowledged: duplicates are executions beyond one per ID (visibility
// lists every run), lost are acknowledged IDs with no execution at all
// (checked with DescribeWorkflowExecution, so visibility lag is not loss).
func audit(ctx context.Context, c client.Client, model string, acked map[string]bool) (duplicates, lost int, err error) {
	runs := map[string]int{}
	query := fmt.Sprintf("%s = '%s'", orchestrator.ModelAttr.GetName(), model)
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 1000})
		if err != nil {
			return 0, 0, fmt.Errorf("list %s: %w", query, err)
		}
		for _, e := range resp.Executions {
			runs[e.GetExecution().GetWorkflowId()]++
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	for _, n := range runs {
		duplicates += n - 1
	}
	for id := range acked {
		if runs[id] > 0 {
			continue
		}
		_, err := c.DescribeWorkflowExecution(ctx, id, "")
		if _, ok := err.(*serviceerror.NotFound); ok {
			lost++
		} else if err != nil {
			return 0, 0, fmt.Errorf("describe %s: %w", id, err)
		}
	}
	return duplicates, lost, nil
}
