package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet/edge"
)

// child is a server process started from this binary with -serve.
type child struct {
	cmd *exec.Cmd
	url string
}

// startChild starts a server of the model file in example; an agent keeps
// its site in work/<mode>.
func startChild(mode, example, model, work string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve", mode, "-addr", "127.0.0.1:0", "-example", example, "-model", model, "-data", filepath.Join(work, mode))
	cmd.Stderr = os.Stderr
	// Killed with the bench, however the bench ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		addr, found := strings.CutPrefix(l, "listening ")
		if !ok || !found {
			c.stop()
			return nil, fmt.Errorf("%s server did not start (said %q)", mode, l)
		}
		c.url = "http://" + addr
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s server did not start within 30s", mode)
	}
	return c, nil
}

// stop kills the child; a second call does nothing.
func (c *child) stop() {
	if c.cmd.Process != nil && c.cmd.ProcessState == nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

// rssMiB is the child's resident set size, from /proc.
func (c *child) rssMiB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", c.cmd.Process.Pid)
}

// cpuSeconds is the CPU time the child used so far (user + system), from
// /proc/<pid>/stat in clock ticks of 1/100 s (USER_HZ, fixed for /proc).
// Per request, it is the cost of a server that latency on a busy shared
// machine hides.
func (c *child) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces: count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", c.cmd.Process.Pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", c.cmd.Process.Pid)
	}
	return (utime + stime) / 100, nil
}

// agentRSS starts an agent with one model, scores 200 requests so that the
// request path is warm, and reads its RSS.
func agentRSS(example, model, work string) (float64, error) {
	c, err := startChild("agent", example, model, work)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	ex, err := loadExample(example, model)
	if err != nil {
		return 0, err
	}
	for i := range 200 {
		if err := score(c.url, ex.sample, fmt.Sprintf("line-%d", i)); err != nil {
			return 0, err
		}
	}
	return c.rssMiB()
}

// score sends one authorised score request and wants a 200.
func score(url string, body []byte, key string) error {
	req, _ := http.NewRequest("POST", url+"/score/"+modelName, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set(edge.HeaderRouteKey, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("score: %d %s", resp.StatusCode, b)
	}
	return nil
}
