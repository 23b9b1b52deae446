package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one modelfleet process of the stack under test (gateway, cloud
// worker or an edge agent), run from the binary as production runs it:
// its own process, its own data directory, flags only. Kill is SIGKILL,
// as a crash or an OOM kill would stop it; Start brings it back with the
// same flags and data.
type proc struct {
	name  string
	bin   string
	args  []string
	log   string // file its output is appended to
	ready string // URL answering 200 once it serves; "" for none
	// probe checks ready (default: plain HTTP); env is added to the
	// process's environment.
	probe *http.Client
	env   []string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has exited.
	exited chan struct{}
	// up is set between a completed Start and the next Kill: the
	// observers count a failed request as an error only while it is set.
	up    atomic.Bool
	kills atomic.Int64
}

func (p *proc) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	// The kernel stops it with us, so a failed run leaves no process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	if p.ready != "" {
		if err := waitHTTP(ctx, p.probe, p.ready, 60*time.Second, exited); err != nil {
			return fmt.Errorf("%s did not become ready (log: %s): %w", p.name, p.log, err)
		}
	}
	p.up.Store(true)
	return nil
}

// Kill stops the process with SIGKILL and waits for it to be gone.
func (p *proc) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up.Store(false)
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
	p.kills.Add(1)
}

// Stop ends the process gracefully (SIGTERM, then SIGKILL after 10 s).
func (p *proc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up.Store(false)
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// running reports whether the process is alive (it may have died on its
// own: the observers report that as a failure of the run).
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitHTTP polls url until it answers 200, the process exits or d passes.
func waitHTTP(ctx context.Context, c *http.Client, url string, d time.Duration, exited <-chan struct{}) error {
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", d, last)
}

// freePorts finds n distinct free TCP ports below the ephemeral range, so
// no outgoing connection takes one between this check and the bind.
func freePorts(n int) ([]int, error) {
	var ports []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for try := 0; len(ports) < n && try < 100*n; try++ {
		p := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		held = append(held, ln)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, errors.New("no free ports between 20000 and 32000")
	}
	return ports, nil
}

// corruptModel flips a byte in the middle of every stored artifact of the
// site (models/<name>/<version>/<digest>.model), as a failing disk would.
// It returns how many files it changed.
func corruptModel(siteDir string) (int, error) {
	paths, err := filepath.Glob(filepath.Join(siteDir, "models", "*", "*", "*.model"))
	if err != nil || len(paths) == 0 {
		return 0, err
	}
	p := paths[rand.IntN(len(paths))]
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		return 0, err
	}
	b[len(b)/2] ^= 0x5a
	return 1, os.WriteFile(p, b, 0o644)
}
