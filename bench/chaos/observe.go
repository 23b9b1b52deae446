package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
)

// observer checks the invariants while the chaos runs, from outside, the
// way an operator's probes would: the sites' desired states as the gateway
// serves them (revisions never go backwards, a revision never changes
// content) and every site's router (it answers /score for the model it
// served before, whenever its process is up).
type observer struct {
	gateway string
	sites   []*site
	client  *http.Client // the sites' routers
	// gw reads the gateway (with -auth, as a viewer: token, the CA).
	gw   *http.Client
	body []byte // one feature row of the example

	mu       sync.Mutex
	revs     map[string]int64            // site -> highest desired revision seen
	contents map[string]map[int64]string // site -> revision -> hash of its models

	duplicateSteps      atomic.Int64 // a revision seen with two contents
	revisionRegressions atomic.Int64 // a lower revision after a higher one
	scores              atomic.Int64 // score requests sent to an up site that served before
	scoreErrors         atomic.Int64 // ... that failed
	desiredReads        atomic.Int64

	logf func(format string, args ...any) // where violations are described; nil: nowhere
}

// site is one edge agent and what the observer knows of it.
type site struct {
	id     string
	dir    string
	router string // http://127.0.0.1:<port>
	proc   *proc
	served atomic.Bool // answered a score once: from then on it must
	cert   string      // with -auth: the fingerprint of the certificate it enrolled with
	full   atomic.Bool // its disk is full (disk.go): the chaos leaves it alone
}

func newObserver(gateway string, gw *http.Client, sites []*site, body []byte) *observer {
	// A connection kept to every site's router: with a fleet of a thousand,
	// the default pool (100 idle in all) would dial most sites anew at every
	// probe and fill the ephemeral ports with TIME_WAIT.
	routers := http.DefaultTransport.(*http.Transport).Clone()
	routers.MaxIdleConns, routers.MaxIdleConnsPerHost = 0, 2
	return &observer{
		gateway: gateway, sites: sites, body: body, gw: gw,
		client:   &http.Client{Timeout: 2 * time.Second, Transport: routers},
		revs:     map[string]int64{},
		contents: map[string]map[int64]string{},
	}
}

func (o *observer) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { o.every(ctx, 250*time.Millisecond, o.checkDesired) })
	wg.Go(func() { o.every(ctx, 200*time.Millisecond, o.probeScores) })
	wg.Wait()
}

// every runs f, then waits d or twice as long as f took, whichever is
// longer: a pass over a thousand sites (-fleet-sites) takes seconds, and
// the observer must not take most of the machine from the stack it
// observes (a third of the time at most); a handful of sites is checked
// every d.
func (o *observer) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	for {
		start := time.Now()
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(d, 2*time.Since(start))):
		}
	}
}

// checkDesired reads each site's desired state; an unreachable gateway
// (killed) is skipped, not counted.
func (o *observer) checkDesired(ctx context.Context) {
	for _, s := range o.sites {
		d, err := o.desired(ctx, s.id)
		if err != nil {
			continue
		}
		o.desiredReads.Add(1)
		o.record(d)
	}
}

func (o *observer) desired(ctx context.Context, id string) (modelfleet.Desired, error) {
	var d modelfleet.Desired
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.gateway+"/api/sites/"+id+"/desired", nil)
	if err != nil {
		return d, err
	}
	resp, err := o.gw.Do(req)
	if err != nil {
		return d, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return d, fmt.Errorf("desired %s: %s", id, resp.Status)
	}
	return d, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d)
}

// record checks one desired state against what was seen before.
func (o *observer) record(d modelfleet.Desired) {
	// What the site applies: each model's versions, digests and weights,
	// and the workloads. (A lease released at a release's end changes the
	// document but not what runs, and keeps the revision.)
	applied := map[string][]string{}
	for name, m := range d.Models {
		for _, v := range m.Versions {
			applied[name] = append(applied[name], fmt.Sprintf("%s@%s=%d", v.Version, v.Digest, v.Weight))
		}
	}
	b, _ := json.Marshal(struct {
		M map[string][]string
		W map[string]modelfleet.DesiredWorkload
	}{applied, d.Workloads})
	sum := sha256.Sum256(b)
	h := fmt.Sprintf("%x %s", sum[:8], b)
	o.mu.Lock()
	defer o.mu.Unlock()
	if d.Revision < o.revs[d.Site] {
		o.revisionRegressions.Add(1)
	}
	o.revs[d.Site] = max(o.revs[d.Site], d.Revision)
	if o.contents[d.Site] == nil {
		o.contents[d.Site] = map[int64]string{}
	}
	if prev, ok := o.contents[d.Site][d.Revision]; ok && prev != h {
		o.duplicateSteps.Add(1)
		if o.logf != nil {
			o.logf("%s: revision %d seen with two contents: %s then %s", d.Site, d.Revision, prev, string(b))
		}
	}
	o.contents[d.Site][d.Revision] = h
}

// probeScores scores one row at every site whose agent is up.
func (o *observer) probeScores(ctx context.Context) {
	for _, s := range o.sites {
		if !s.proc.up.Load() {
			continue
		}
		err := o.score(ctx, s)
		if !s.proc.up.Load() || ctx.Err() != nil {
			continue // killed while asking: not the site's fault
		}
		switch {
		case err == nil:
			if s.served.Load() {
				o.scores.Add(1)
			}
			s.served.Store(true)
		case s.served.Load():
			o.scores.Add(1)
			o.scoreErrors.Add(1)
		}
	}
}

func (o *observer) score(ctx context.Context, s *site) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.router+"/score/"+modelName, bytes.NewReader(o.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("score at %s: %s", s.id, resp.Status)
	}
	return nil
}

// converged reports whether the site's router serves exactly the versions
// and weights its desired state names, and if not, what differs.
func (o *observer) converged(ctx context.Context, s *site) (bool, string) {
	d, err := o.desired(ctx, s.id)
	if err != nil {
		return false, err.Error()
	}
	want := []string{}
	for name, m := range d.Models {
		for _, v := range m.Versions {
			want = append(want, fmt.Sprintf("%s:%s:%d", name, v.Version, v.Weight))
		}
	}
	got, err := o.served(ctx, s)
	if err != nil {
		return false, err.Error()
	}
	slices.Sort(want)
	w, g := strings.Join(want, ","), strings.Join(got, ",")
	return w == g, fmt.Sprintf("desired revision %d wants %s, the router serves %s", d.Revision, w, g)
}

// served lists what the site's router serves, as name:version:weight.
func (o *observer) served(ctx context.Context, s *site) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.router+"/api/models", nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var models []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Weight  int    `json:"weight"`
		Shadow  bool   `json:"shadow"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&models); err != nil {
		return nil, err
	}
	out := []string{}
	for _, m := range models {
		out = append(out, fmt.Sprintf("%s:%s:%d", m.Name, m.Version, m.Weight))
	}
	slices.Sort(out)
	return out, nil
}

// awaitConverged waits until the site serves its desired state; the time
// it took, or false after limit.
func (o *observer) awaitConverged(ctx context.Context, s *site, limit time.Duration) (time.Duration, string, bool) {
	start := time.Now()
	why := ""
	for time.Since(start) < limit && ctx.Err() == nil {
		ok, w := o.converged(ctx, s)
		if ok {
			return time.Since(start), "", true
		}
		why = w
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), why, false
}
