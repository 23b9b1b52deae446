package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// DefaultExternalWorkloadHealth is where an agent with ExternalWorkloads
// asks each workload which version runs: the Service the gitops driver
// renders beside each workload's Deployment ({name} is the workload).
const DefaultExternalWorkloadHealth = "http://modelfleet-workload-{name}:9100/healthz"

// DefaultExternalWorkloadGrace is how long a workload may take to run the
// desired version (an image pulled, a pod recreated) before the site
// reports it failed.
const DefaultExternalWorkloadGrace = 5 * time.Minute

// externalHealth is what a workload's GET /healthz says: `modelfleet
// workload run` answers its workload.Status, and a workload image must
// answer at least these fields (docs/workloads.md, "Container images").
type externalHealth struct {
	Workload  string `json:"workload"`
	Version   string `json:"version"`
	State     string `json:"state"`
	LastError string `json:"lastError"`
}

// externalWorkloads remembers since when each workload version has been
// desired without running.
type externalWorkloads struct {
	mu     sync.Mutex
	client *http.Client
	since  map[string]time.Time // name + "\x00" + version
}

// probeExternal reports the workloads the site runs outside the agent, as
// their health endpoints say: the version running, or, while the desired
// one is not (yet) running, the state, pending within the grace period and
// failed with the reason after it. A "none" health URL turns probing off:
// the agent then reports no workloads, as before it probed.
func (s *Site) probeExternal(ctx context.Context, ds modelfleet.Desired, actual *modelfleet.Actual) {
	tmpl := s.cfg.ExternalWorkloadHealth
	if tmpl == "none" || len(ds.Workloads) == 0 {
		return
	}
	if tmpl == "" {
		tmpl = DefaultExternalWorkloadHealth
	}
	grace := s.cfg.ExternalWorkloadGrace
	if grace <= 0 {
		grace = DefaultExternalWorkloadGrace
	}
	ew := &s.external
	ew.mu.Lock()
	if ew.client == nil {
		ew.client = &http.Client{Timeout: 3 * time.Second}
		ew.since = map[string]time.Time{}
	}
	ew.mu.Unlock()
	actual.Workloads = map[string]modelfleet.ActualWorkload{}
	wanted := map[string]bool{}
	for name, dw := range ds.Workloads {
		key := name + "\x00" + dw.Version
		wanted[key] = true
		h, err := ew.get(ctx, strings.ReplaceAll(tmpl, "{name}", name))
		aw := modelfleet.ActualWorkload{Model: dw.Model, Version: h.Version, State: h.State}
		if err == nil && h.Workload != "" && h.Workload != name {
			err = fmt.Errorf("its health endpoint answers for workload %q", h.Workload)
		}
		if err == nil && h.Version == dw.Version {
			if aw.State == "" {
				aw.State = "running"
			}
			actual.Workloads[name] = aw
			continue
		}
		ew.mu.Lock()
		first, ok := ew.since[key]
		if !ok {
			first = time.Now()
			ew.since[key] = first
		}
		ew.mu.Unlock()
		why := fmt.Sprintf("version %q runs", h.Version)
		switch {
		case err != nil:
			why = err.Error()
		case h.LastError != "":
			why += ": " + h.LastError
		}
		if aw.State == "" {
			aw.State = "rolling out"
		}
		if time.Since(first) > grace {
			aw.Error = fmt.Sprintf("workload %s:%s is not running after %s: %s", name, dw.Version, grace, why)
		}
		actual.Workloads[name] = aw
	}
	ew.mu.Lock()
	for k := range ew.since {
		if !wanted[k] {
			delete(ew.since, k)
		}
	}
	ew.mu.Unlock()
}

// get reads one workload's health; a 503 with a body still says which
// version runs (unhealthy), no answer says nothing.
func (ew *externalWorkloads) get(ctx context.Context, url string) (externalHealth, error) {
	var h externalHealth
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return h, err
	}
	resp, err := ew.client.Do(req)
	if err != nil {
		return h, fmt.Errorf("its health endpoint does not answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return h, fmt.Errorf("its health endpoint: %v", err)
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return externalHealth{}, fmt.Errorf("its health endpoint answered %s without the JSON status", resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("unhealthy (%s)", resp.Status)
	}
	return h, nil
}
