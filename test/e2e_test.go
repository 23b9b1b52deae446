// Package test holds the end-to-end test: the real binary (bin/modelfleet dev)
// with a real Temporal dev server (bin/tools/temporal), driven the way a
// newcomer drives it, through the CLI and HTTP. `make test` builds both first.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	simBase, workBase                   int
	mqtt                                string
	cmd                                 *exec.Cmd
	log                                 *bytes.Buffer
	extra                               []string // more `modelfleet dev` flags
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
	ports := freePorts(t, 7)
	s.temporal = fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.gateway = fmt.Sprintf("127.0.0.1:%d", ports[2])
	s.registry = fmt.Sprintf("127.0.0.1:%d", ports[3])
	// Sites take consecutive ports from a base; find a free run of three.
	base := freeRun(t, 9)
	s.sitePorts = []int{base, base + 1, base + 2}
	s.simBase, s.workBase = base+3, base+6
	s.mqtt = fmt.Sprintf("127.0.0.1:%d", ports[4])
	return s
}

func (s *stack) start() {
	t := s.t
	t.Helper()
	ui := strings.Split(s.temporal, ":")[1]
	var uiPort int
	fmt.Sscan(ui, &uiPort)
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(s.bin, "dev",
		"--data-dir", s.dataDir, "--sites", "3",
		"--temporal-port", strings.Split(s.temporal, ":")[1],
		"--ui-port", fmt.Sprint(freePorts(t, 1)[0]),
		"--gateway-addr", s.gateway, "--registry-addr", s.registry,
		"--site-base-port", fmt.Sprint(s.sitePorts[0]),
		"--mqtt-addr", s.mqtt,
		"--sim-base-port", fmt.Sprint(s.simBase),
		"--workload-base-port", fmt.Sprint(s.workBase),
	)
	s.cmd.Args = append(s.cmd.Args, s.extra...)
	s.cmd.Env = append(os.Environ(), "MODELFLEET_TEMPORAL_BIN="+filepath.Join(repoRoot(t), "bin", "tools", "temporal"))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	waitFor(t, 3*time.Minute, "the stack to come up", func() error {
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
		"--gateway-url", "http://" + s.gateway,
		"--registry-url", "http://" + s.registry,
	}, args...)...)
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

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func freeRun(t *testing.T, n int) int {
	t.Helper()
	for base := 20000 + os.Getpid()%20000; base < 60000; base += n {
		ok := true
		var ls []net.Listener
		for i := range n {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
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
