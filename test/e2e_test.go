// Package test holds the end-to-end test: the real binary (bin/modelfleet dev)
// with a real Temporal dev server (bin/tools/temporal), driven the way a
// newcomer drives it, through the CLI and HTTP. `make test` builds both first.
package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stack is one `modelfleet dev` process on free ports with its own data dir.
type stack struct {
	t                                   *testing.T
	bin, dataDir                        string
	temporal, gateway, registry, router string
	sitePorts                           []int
	simulators, workloads               []string // site-1, -2, -3's URLs
	mqtt                                string
	cmd                                 *exec.Cmd
	log                                 *bytes.Buffer
	extra                               []string // more `modelfleet dev` flags
	as                                  string   // credentials file the CLI uses (default: the newcomer's)
}

// cliAs runs the CLI as another of the stack's dev identities
// (<data-dir>/credentials/<file>).
func (s *stack) cliAs(file string, args ...string) ([]byte, error) {
	s.as = file
	defer func() { s.as = "" }()
	return s.cli(args...)
}

// client trusts the stack's gateway CA and sends no credential.
func (s *stack) client() *http.Client {
	ca, err := os.ReadFile(filepath.Join(s.dataDir, "credentials", "ca.crt"))
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func newStack(t *testing.T) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs the Temporal dev server (run `make test`)")
	}
	root := repoRoot(t)
	s := &stack{t: t, bin: filepath.Join(root, "bin", "modelfleet"), dataDir: t.TempDir()}
	for _, p := range []string{s.bin, filepath.Join(root, "bin", "tools", "temporal")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run `make build tools` (or `make test`) first", p)
		}
	}
	return s
}

func (s *stack) start() {
	t := s.t
	t.Helper()
	s.log = &bytes.Buffer{}
	// Every listener on a port the kernel picks; endpoints.json says which.
	endpoints := filepath.Join(s.dataDir, "endpoints.json")
	_ = os.Remove(endpoints)
	s.cmd = exec.Command(s.bin, "dev", "--data-dir", s.dataDir, "--sites", "3", "--ephemeral-ports")
	s.cmd.Args = append(s.cmd.Args, s.extra...)
	s.cmd.Env = append(os.Environ(), "MODELFLEET_TEMPORAL_BIN="+filepath.Join(repoRoot(t), "bin", "tools", "temporal"))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	waitFor(t, 3*time.Minute, "the stack to come up", func() error {
		if err := s.readEndpoints(endpoints); err != nil {
			return err
		}
		out, err := s.cli("site", "list", "--json")
		if err != nil {
			return err
		}
		var sites []map[string]any
		if err := json.Unmarshal(out, &sites); err != nil || len(sites) != 3 {
			return fmt.Errorf("site list: %s", out)
		}
		return nil
	})
}

func (s *stack) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if s.t.Failed() {
		s.t.Logf("modelfleet dev output:\n%s", tail(s.log.String(), 60))
	}
	s.cmd = nil
}

// cli runs bin/modelfleet against this stack.
func (s *stack) cli(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append([]string{
		"--temporal-address", s.temporal,
		"--gateway-url", s.gateway,
		"--registry-url", "http://" + s.registry,
	}, args...)...)
	// The credentials the stack minted into its data dir: the
	// newcomer's own, or another identity's (cliAs).
	cmd.Env = append(os.Environ(), "MODELFLEET_DATA_DIR="+s.dataDir)
	if s.as != "" {
		cmd.Env = append(cmd.Env, "MODELFLEET_TOKEN_FILE="+filepath.Join(s.dataDir, "credentials", s.as))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("modelfleet %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func (s *stack) mustCLI(args ...string) []byte {
	s.t.Helper()
	out, err := s.cli(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *stack) releaseState(model, version string) (map[string]any, error) {
	out, err := s.cli("release", "status", model, version, "--json")
	if err != nil {
		return nil, err
	}
	var st map[string]any
	return st, json.Unmarshal(out, &st)
}

func (s *stack) waitSucceeded(model, version string) map[string]any {
	s.t.Helper()
	var st map[string]any
	waitFor(s.t, 2*time.Minute, "release "+model+":"+version+" to succeed", func() error {
		var err error
		if st, err = s.releaseState(model, version); err != nil {
			return err
		}
		if st["state"] != "succeeded" {
			return fmt.Errorf("state %v (reason %v)", st["state"], st["reason"])
		}
		return nil
	})
	return st
}

// score posts the example's sample to a site's router.
func (s *stack) score(port int, model string) (map[string]any, error) {
	body, err := os.ReadFile(filepath.Join(repoRoot(s.t), "examples", "bearing-failure", "sample.json"))
	if err != nil {
		return nil, err
	}
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/score/%s", port, model), "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("score at :%d: %s: %s", port, resp.Status, buf)
	}
	var out map[string]any
	return out, json.Unmarshal(buf, &out)
}

// readEndpoints takes the stack's addresses from the endpoints file
// `modelfleet dev` writes once it is up (app.Endpoints).
func (s *stack) readEndpoints(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var e struct {
		Temporal, Gateway, Registry, MQTT string
		Sites                             []struct{ Router, Simulator, Workload string }
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s.temporal, s.mqtt = e.Temporal, strings.TrimPrefix(e.MQTT, "mqtt://")
	s.gateway, s.registry = e.Gateway, strings.TrimPrefix(e.Registry, "http://")
	s.sitePorts, s.simulators, s.workloads = nil, nil, nil
	for _, site := range e.Sites {
		s.simulators, s.workloads = append(s.simulators, site.Simulator), append(s.workloads, site.Workload)
		u, err := url.Parse(site.Router)
		if err != nil {
			return err
		}
		p, err := strconv.Atoi(u.Port())
		if err != nil {
			return fmt.Errorf("site router %q: %w", site.Router, err)
		}
		s.sitePorts = append(s.sitePorts, p)
	}
	return nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
