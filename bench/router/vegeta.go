package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet/edge"
)

// report is what the bench keeps of a vegeta JSON report; latencies in ms.
type report struct {
	p50, p99, max float64
	throughput    float64
	success       float64
	requests      int
	codes         map[string]int
	errors        []string
	cpuPerReq     float64 // µs of server CPU per request; NaN if not measured
}

func cpuOf(c *child) (float64, error) {
	if c == nil {
		return 0, fmt.Errorf("no process")
	}
	return c.cpuSeconds()
}

// p99Or is the p99 of a run that may not have happened (NaN then).
func (r *report) p99Or() float64 {
	if r == nil {
		return math.NaN()
	}
	return r.p99
}

func findVegeta(path string) (string, error) {
	if _, err := os.Stat(path); err == nil {
		return filepath.Abs(path)
	}
	if p, err := exec.LookPath("vegeta"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("vegeta is not at %q nor on PATH: `make bench-router` installs it into bin/tools", path)
}

// requestHeaders are the headers of target i: the API key, and one route
// key per simulated machine so that stickiness is exercised. Every server
// is sent the same requests, these headers included: the floor and nginx
// ignore them, as a bare handler would, and the router acts on them, so
// the difference between the two is what the router does with a request,
// not what carrying two more headers costs the client and the server. Sent
// to the router only (the floor got one header-less target until
// 2026-12-07), a second floor in the router's place (-aa) had its best
// round's p99 1.08–1.29 times the floor's in six format runs; sent the
// same requests, 0.85–1.14 (docs/models.md, Figures).
func requestHeaders(i int) []string {
	return []string{"Authorization: Bearer " + apiKey, fmt.Sprintf("%s: machine-%d", edge.HeaderRouteKey, i)}
}

// writeTargets writes a vegeta targets file (HTTP format) of c.keys
// targets at url, each with its requestHeaders, which vegeta sends
// round-robin.
func (c *config) writeTargets(name, url string) (string, error) {
	var b strings.Builder
	for i := range c.keys {
		fmt.Fprintf(&b, "POST %s/score/%s\nContent-Type: application/json\n", url, modelName)
		for _, h := range requestHeaders(i) {
			b.WriteString(h + "\n")
		}
		fmt.Fprintf(&b, "@%s\n\n", filepath.Join(c.example, "sample.json"))
	}
	p := filepath.Join(c.work, name+".targets")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// attack runs vegeta attack with args against the targets file and
// reports the requests sent skip or more after its first (window). With
// server, it measures the server's CPU time per request over the same part.
func (c *config) attack(name, targets string, skip time.Duration, server *child, args ...string) (*report, error) {
	out := filepath.Join(c.work, name+".bin")
	defer os.Remove(out)
	cmd := exec.Command(c.vegeta, append([]string{"attack", "-targets", targets, "-output", out, "-timeout", "5s"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("vegeta attack %s: %w", name, err)
	}
	time.Sleep(skip)
	cpu0, cpuErr := cpuOf(server)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("vegeta attack %s: %w", name, err)
	}
	cpu1, cpuErr1 := cpuOf(server)
	r, err := c.window(out, skip)
	if err != nil {
		return nil, fmt.Errorf("vegeta results of %s: %w", name, err)
	}
	r.cpuPerReq = math.NaN()
	if cpuErr == nil && cpuErr1 == nil && r.requests > 0 {
		r.cpuPerReq = (cpu1 - cpu0) / float64(r.requests) * 1e6
	}
	return r, nil
}

// measure loads url at the fixed rate for the warm-up and then the
// measured duration, in one attack, and reports the requests sent after the
// warm-up: a new vegeta process opens its connections and starts its
// workers in its first moments, which put 60–240 requests above 2 ms into
// the first 50 ms of every attack (once 250 more into the next 50), of
// either server, against about 50 a second after that: as many as the
// whole p99 of a 10 s run allows. With server, the server's CPU time per
// request in the measured part is measured too.
func (c *config) measure(name, url string, server *child) (*report, error) {
	targets, err := c.writeTargets(name, url)
	if err != nil {
		return nil, err
	}
	// Bounded workers and connections: a healthy run needs a handful, and
	// on an overloaded machine an unbounded open-loop generator opens a
	// connection per late request until the ephemeral ports run out. With
	// the bound it falls behind the rate instead, which the report shows.
	bound := strconv.Itoa(c.fixedWorkers)
	r, err := c.attack(name, targets, c.warmup, server, "-rate="+strconv.Itoa(c.rate), "-max-workers="+bound,
		"-max-connections="+bound, "-duration="+(c.warmup+c.duration).String())
	if err != nil {
		return nil, err
	}
	fmt.Printf("%-8s p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms  %6.0f req/s ok  success %.2f%%  cpu %s µs/req  %s\n",
		name, r.p50, r.p99, r.max, r.throughput, 100*r.success, num(r.cpuPerReq, 1), codes(r.codes))
	if r.success < 1 || r.throughput < 0.95*float64(c.rate) {
		fmt.Printf("%-8s WARNING: the run fell behind the rate or failed requests (machine overloaded?); first errors: %q\n", name, r.errors[:min(3, len(r.errors))])
	}
	return r, nil
}

// result is what the bench reads of one of vegeta's results.
type result struct {
	Code      int       `json:"code"`
	Timestamp time.Time `json:"timestamp"`
	Latency   int64     `json:"latency"` // ns
	Error     string    `json:"error"`
}

// window reads the results vegeta wrote to out (vegeta encode) and reports
// those of the requests sent skip or more after the first: p50, p99 and
// max by rank, success (a status from 200 to 399, as vegeta counts it) and
// throughput (successes per second, from the window's start to the last
// answer).
func (c *config) window(out string, skip time.Duration) (*report, error) {
	cmd := exec.Command(c.vegeta, "encode", "--to", "json", out)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var all []result
	dec := json.NewDecoder(stdout)
	for {
		var r result
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, err
		}
		all = append(all, r)
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	return summarise(all, skip), nil
}

// summarise is window's report of results.
func summarise(all []result, skip time.Duration) *report {
	rep := &report{p50: math.NaN(), p99: math.NaN(), max: math.NaN(), codes: map[string]int{}}
	if len(all) == 0 {
		return rep
	}
	first := all[0].Timestamp
	for _, r := range all {
		if r.Timestamp.Before(first) {
			first = r.Timestamp
		}
	}
	start := first.Add(skip)
	var lat []int64
	var end time.Time
	ok := 0
	seen := map[string]bool{}
	for _, r := range all {
		if r.Timestamp.Before(start) {
			continue
		}
		lat = append(lat, r.Latency)
		rep.codes[strconv.Itoa(r.Code)]++
		if r.Code >= 200 && r.Code < 400 {
			ok++
		}
		if r.Error != "" && !seen[r.Error] {
			seen[r.Error] = true
			rep.errors = append(rep.errors, r.Error)
		}
		if e := r.Timestamp.Add(time.Duration(r.Latency)); e.After(end) {
			end = e
		}
	}
	rep.requests = len(lat)
	if len(lat) == 0 {
		return rep
	}
	slices.Sort(lat)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(lat)))) - 1
		return float64(lat[max(i, 0)]) / float64(time.Millisecond)
	}
	rep.p50, rep.p99, rep.max = rank(0.50), rank(0.99), rank(1)
	rep.success = float64(ok) / float64(len(lat))
	if d := end.Sub(start).Seconds(); d > 0 {
		rep.throughput = float64(ok) / d
	}
	return rep
}

// maxThroughput runs vegeta as fast as a bounded number of workers can go.
func (c *config) maxThroughput(url string) (float64, error) {
	targets, err := c.writeTargets("router-max", url)
	if err != nil {
		return 0, err
	}
	w := strconv.Itoa(c.maxWorkers)
	r, err := c.attack("router-max", targets, 0, nil, "-rate=0", "-workers="+w, "-max-workers="+w, "-max-connections="+w, "-duration="+c.maxDuration.String())
	if err != nil {
		return 0, err
	}
	fmt.Printf("router   max throughput %.0f req/s ok (%d workers, %s; p99 %.3f ms, success %.2f%%)\n",
		r.throughput, c.maxWorkers, c.maxDuration, r.p99, 100*r.success)
	return r.throughput, nil
}

func codes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
