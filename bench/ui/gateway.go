package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/app"
)

// The gateway runs in a child process of its own (this binary again, with
// -gateway-child), so that its CPU time is its own: not the browser's,
// not the Chrome DevTools client's in this process.

// childReady is the line the child prints once it serves.
type childReady struct {
	URL  string `json:"url"`
	Link string `json:"link"` // one-time sign-in link
}

// runChild opens a real gateway (TLS, the embedded issuer, the role model,
// the bbolt fleet directory, the embedded signal queue and the drift
// monitor) in dir, fills its directory with sites, prints childReady and
// serves until its stdin closes. It has no Temporal: the fleet page reads
// the directory only, and nothing here starts a workflow.
func runChild(dir string, sites int, logLevel slog.Level) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	gw, err := app.OpenGateway(app.GatewayConfig{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Logger: log,
		Auth: &app.AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(dir, "credentials")},
	})
	if err != nil {
		return err
	}
	defer gw.Close()
	if err := populate(gw, sites); err != nil {
		return err
	}
	link, err := gw.DashboardLink("token")
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(childReady{URL: gw.URL(), Link: link}); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	return nil
}

// populate registers n sites as their agents' reports would: labels
// plant (10 plants), line (4 per plant) and ring (1% canary, 10% r1, 30%
// r2, the rest main, as bench-rollout's waves select), two models, a
// tenth of the fleet on a newer version of one, a twentieth with a
// maintenance window. The directory stamps each as seen now.
func populate(gw *app.Gateway, n int) error {
	work := make(chan int)
	errs := make([]error, 32)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := range work {
				if err := gw.Directory.ReportActual(report(i, n)); err != nil && errs[w] == nil {
					errs[w] = err
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

func report(i, n int) modelfleet.Actual {
	id := fmt.Sprintf("site-%05d", i+1)
	ring := "main"
	switch f := float64(i) / float64(max(n, 1)); {
	case f < 0.01:
		ring = "canary"
	case f < 0.11:
		ring = "r1"
	case f < 0.41:
		ring = "r2"
	}
	v := "1"
	if i%10 == 3 {
		v = "2"
	}
	rec := &modelfleet.Site{
		ID: id, TaskQueue: modelfleet.SiteTaskQueue(id), RouterURL: "http://127.0.0.1:9/",
		Labels: map[string]string{"plant": fmt.Sprintf("plant-%02d", i%10), "line": fmt.Sprintf("line-%d", i/10%4), "ring": ring},
		Serving: []modelfleet.ServedModel{
			{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: v}, Digest: "sha256:" + strings.Repeat("a", 64)},
			{ModelRef: modelfleet.ModelRef{Name: "press-anomaly", Version: "7"}, Digest: "sha256:" + strings.Repeat("b", 64)},
		},
	}
	if i%20 == 7 {
		rec.Window = &modelfleet.MaintenanceWindow{Schedule: "0 22 * * 1-5", Duration: "2h"}
	}
	return modelfleet.Actual{Site: id, Revision: 0, Models: map[string]modelfleet.ActualModel{}, SiteRecord: rec}
}

// child is a running gateway child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.Closer
	ready childReady
}

func startChild(dir string, sites int, logLevel string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-gateway-child", dir, "-child-sites", strconv.Itoa(sites), "-log", logLevel)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &c.ready)
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("gateway child with %d sites: %w", sites, err)
	}
	return c, nil
}

// cpu is the child's CPU time so far (user and system), from
// /proc/<pid>/stat in clock ticks of 1/100 s (Linux's USER_HZ).
func (c *child) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat of %d: %q", c.cmd.Process.Pid, s)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
