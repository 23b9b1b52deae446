// Package rollout holds the release policy a model's rollout follows — waves
// of sites selected by label, traffic steps, bake times, success criteria,
// failure budgets and approval gates — and the maintenance-window arithmetic
// that decides when a site may be changed. It is pure: no I/O, no clock; the
// workflows call it with workflow time so it is deterministic on replay.
package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// APIVersion is the policy document version this package reads.
const APIVersion = "modelfleet/v1"

// Defaults, applied by Normalize where a policy is silent.
const (
	// DefaultBake is the bake of a wave with criteria and no bake: the
	// criteria are measured over the bake, so one is needed.
	DefaultBake            = 5 * time.Minute
	DefaultApprovalTimeout = 24 * time.Hour
	// DefaultMaxBakeFactor: an inconclusive window extends the bake up to
	// maxBake, by default three times the bake, and at least
	// MinAnalysisSpan.
	DefaultMaxBakeFactor = 3
	// MinAnalysisSpan is the shortest maxBake of a wave with criteria:
	// sites report their counters with their heartbeat (every 10 s by
	// default, agent.DefaultHeartbeat), so a shorter window may hold no
	// report newer than its start, and could never be judged.
	MinAnalysisSpan = 30 * time.Second
	// Minimum samples over a bake window before a criterion is judged.
	DefaultMinRequests    = 100                          // maxErrorRate, maxP99LatencyMs
	DefaultMinPredictions = modelfleet.MinShiftSamples   // maxPredictionShift, each side
	DefaultMinLabelled    = modelfleet.MinQualitySamples // minQuality
	maxPolicyBytes        = 256 << 10
	maxWaves              = 50
	maxBakeLimit          = 7 * 24 * time.Hour
	maxMinSamples         = 1_000_000_000
)

// What a wave does when its bake window stays inconclusive (too few
// samples for a criterion) up to maxBake.
const (
	OnInconclusiveFail  = "fail"  // a breach: the release rolls back (default)
	OnInconclusivePass  = "pass"  // the step passes, recorded as inconclusive
	OnInconclusivePause = "pause" // the release pauses for an operator
)

// Policy is one model's rollout policy.
type Policy struct {
	APIVersion string    `yaml:"apiVersion" json:"apiVersion"`
	Waves      []Wave    `yaml:"waves" json:"waves"`
	Approval   *Approval `yaml:"approval,omitempty" json:"approval,omitempty"`
}

// Wave is one ring of the rollout: the sites its selector picks (minus those
// an earlier wave took), changed at most MaxConcurrent at a time, through the
// traffic Steps, each followed by Bake and a check of Criteria.
type Wave struct {
	Name          string            `yaml:"name" json:"name"`
	Select        map[string]string `yaml:"select,omitempty" json:"select,omitempty"`
	MaxConcurrent int               `yaml:"maxConcurrent,omitempty" json:"maxConcurrent,omitempty"`
	FailureBudget Budget            `yaml:"failureBudget,omitempty" json:"failureBudget,omitempty"`
	Bake          Duration          `yaml:"bake,omitempty" json:"bake,omitempty"`
	Steps         []int             `yaml:"steps,omitempty" json:"steps,omitempty"`
	Criteria      Criteria          `yaml:"criteria,omitempty" json:"criteria,omitempty"`
	// MaxBake is how long a bake may grow while its window is
	// inconclusive (default three times Bake); OnInconclusive says what
	// happens then: fail (default), pass or pause.
	MaxBake        Duration `yaml:"maxBake,omitempty" json:"maxBake,omitempty"`
	OnInconclusive string   `yaml:"onInconclusive,omitempty" json:"onInconclusive,omitempty"`
	// BakeAcrossClose lets a step start in a site's maintenance window
	// whose close comes before the step's bake ends; by default the step
	// waits for a window with room for its bake. No step is ever applied
	// outside the window either way.
	BakeAcrossClose bool `yaml:"bakeAcrossClose,omitempty" json:"bakeAcrossClose,omitempty"`
}

// WindowRoom is how long a site's maintenance window must stay open after
// a step of this wave is applied: its bake, or nothing with
// BakeAcrossClose.
func (w Wave) WindowRoom() time.Duration {
	if w.BakeAcrossClose {
		return 0
	}
	return w.Bake.Std()
}

// Criteria a wave must meet after each bake, measured over the bake window
// alone. Zero thresholds are not checked. Each threshold is judged only
// over at least its minimum of samples (zero: the default); below it the
// window is inconclusive.
type Criteria struct {
	MaxErrorRate       float64 `yaml:"maxErrorRate,omitempty" json:"maxErrorRate,omitempty"`
	MaxP99LatencyMs    float64 `yaml:"maxP99LatencyMs,omitempty" json:"maxP99LatencyMs,omitempty"`
	MaxPredictionShift float64 `yaml:"maxPredictionShift,omitempty" json:"maxPredictionShift,omitempty"`
	MinQuality         float64 `yaml:"minQuality,omitempty" json:"minQuality,omitempty"`
	// MinRequests is the fewest requests of the new version for the error
	// rate and p99 (default 100), MinPredictions the fewest predictions on
	// each side of the prediction shift (default 200), MinLabelled the
	// fewest labelled predictions for quality (default 50).
	MinRequests    int64 `yaml:"minRequests,omitempty" json:"minRequests,omitempty"`
	MinPredictions int64 `yaml:"minPredictions,omitempty" json:"minPredictions,omitempty"`
	MinLabelled    int64 `yaml:"minLabelled,omitempty" json:"minLabelled,omitempty"`
}

// Any reports whether any criterion is set.
func (c Criteria) Any() bool {
	return c.MaxErrorRate > 0 || c.MaxP99LatencyMs > 0 || c.MaxPredictionShift > 0 || c.MinQuality > 0
}

// Inconclusive is what the wave does with an inconclusive window (default
// fail: never a silent pass).
func (w Wave) Inconclusive() string {
	switch w.OnInconclusive {
	case OnInconclusivePass, OnInconclusivePause:
		return w.OnInconclusive
	}
	return OnInconclusiveFail
}

// BakeLimit is how long a bake may grow while inconclusive: MaxBake, never
// less than Bake (default DefaultMaxBakeFactor times Bake), and never less
// than MinAnalysisSpan.
func (w Wave) BakeLimit() time.Duration {
	limit := DefaultMaxBakeFactor * w.Bake.Std()
	if w.MaxBake.Std() >= w.Bake.Std() && w.MaxBake > 0 {
		limit = w.MaxBake.Std()
	}
	return max(limit, MinAnalysisSpan)
}

// Approval gates: after each named wave the rollout waits for a human.
type Approval struct {
	After     []string `yaml:"after" json:"after"`
	Timeout   Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	OnTimeout string   `yaml:"onTimeout,omitempty" json:"onTimeout,omitempty"` // "abort" (default) or "proceed"
	// Count approvals pass a gate (default 1); with Distinct they must
	// come from as many different identities (a second approve from the
	// same one is refused).
	Count    int  `yaml:"count,omitempty" json:"count,omitempty"`
	Distinct bool `yaml:"distinct,omitempty" json:"distinct,omitempty"`
	// ForbidSelfApproval refuses an approve from the release's owner: the
	// identity that registered the model version or started the release.
	ForbidSelfApproval bool `yaml:"forbidSelfApproval,omitempty" json:"forbidSelfApproval,omitempty"`
}

// MaxApprovals bounds Approval.Count.
const MaxApprovals = 10

// On-timeout behaviours of an approval gate.
const (
	OnTimeoutAbort   = "abort"
	OnTimeoutProceed = "proceed"
)

// Budget is a failure budget: a count of sites ("2") or a percentage of the
// wave ("10%").
type Budget struct {
	Count   int     `json:"count,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// Allowed is how many of n sites may fail.
func (b Budget) Allowed(n int) int {
	if b.Percent > 0 {
		return int(math.Floor(b.Percent / 100 * float64(n)))
	}
	return b.Count
}

func (b Budget) String() string {
	if b.Percent > 0 {
		return strconv.FormatFloat(b.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(b.Count)
}

// UnmarshalYAML reads "3" or "10%".
func (b *Budget) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 || math.IsNaN(v) {
			return fmt.Errorf("failureBudget %q: want a count or a percentage between 0%% and 100%%", s)
		}
		*b = Budget{Percent: v}
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return fmt.Errorf("failureBudget %q: want a count (e.g. 2) or a percentage (e.g. 10%%)", s)
	}
	*b = Budget{Count: v}
	return nil
}

// Duration is a time.Duration written as "90s", "5m", "24h".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want e.g. 30s, 5m or 2h", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Parse decodes and validates a policy document. Unknown keys are errors: a
// misspelt "aproval" must not silently drop a gate.
func Parse(data []byte) (Policy, error) {
	var p Policy
	if len(data) > maxPolicyBytes {
		return p, modelfleet.Errorf(modelfleet.EINVALID, "rollout policy is larger than %d bytes", maxPolicyBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return p, modelfleet.Errorf(modelfleet.EINVALID, "rollout policy is empty")
		}
		return p, modelfleet.Errorf(modelfleet.EINVALID, "rollout policy: %v", err)
	}
	if err := p.Normalize(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Default is the policy of a model that declares none: a canary wave (sites
// labelled ring=canary) stepping 10 → 50 → 100 with a bake after each step,
// a human approval after it (abort after 24 h without one), then every other
// site in one wave.
func Default() Policy {
	p := Policy{
		APIVersion: APIVersion,
		Waves: []Wave{
			{Name: "canary", Select: map[string]string{"ring": "canary"}, Steps: []int{10, 50, 100}},
			{Name: "fleet", FailureBudget: Budget{Percent: 5}},
		},
		Approval: &Approval{After: []string{"canary"}},
	}
	if err := p.Normalize(); err != nil {
		panic(err) // the default is a constant; a failure is a programming error
	}
	return p
}

// Normalize validates p and fills defaults in place. Errors name the wave
// and the field.
func (p *Policy) Normalize() error {
	bad := func(format string, args ...any) error {
		return modelfleet.Errorf(modelfleet.EINVALID, "rollout policy: "+format, args...)
	}
	if p.APIVersion == "" {
		p.APIVersion = APIVersion
	}
	if p.APIVersion != APIVersion {
		return bad("apiVersion %q is not supported: use %q", p.APIVersion, APIVersion)
	}
	if len(p.Waves) == 0 {
		return bad("at least one wave is required")
	}
	if len(p.Waves) > maxWaves {
		return bad("%d waves is more than the %d allowed", len(p.Waves), maxWaves)
	}
	names := map[string]bool{}
	for i := range p.Waves {
		w := &p.Waves[i]
		if w.Name == "" {
			w.Name = fmt.Sprintf("wave-%d", i+1)
		}
		if err := modelfleet.ValidateName("wave name", w.Name); err != nil {
			return bad("waves[%d]: %s", i, modelfleet.ErrorMessage(err))
		}
		if names[w.Name] {
			return bad("waves[%d]: duplicate wave name %q", i, w.Name)
		}
		names[w.Name] = true
		if w.MaxConcurrent < 0 {
			return bad("wave %q: maxConcurrent %d must be positive (0 means the whole wave at once)", w.Name, w.MaxConcurrent)
		}
		if len(w.Steps) == 0 {
			w.Steps = []int{100}
		}
		prev := 0
		for _, s := range w.Steps {
			if s <= prev || s > 100 {
				return bad("wave %q: steps %v must rise strictly, each between 1 and 100", w.Name, w.Steps)
			}
			prev = s
		}
		if prev != 100 {
			return bad("wave %q: steps %v must end at 100 (the new version takes all traffic)", w.Name, w.Steps)
		}
		c := w.Criteria
		if c.MaxErrorRate < 0 || c.MaxErrorRate > 1 || c.MaxPredictionShift < 0 || c.MaxPredictionShift > 1 || c.MaxP99LatencyMs < 0 || c.MinQuality < 0 || c.MinQuality > 1 ||
			math.IsNaN(c.MaxErrorRate) || math.IsNaN(c.MaxPredictionShift) || math.IsNaN(c.MaxP99LatencyMs) || math.IsNaN(c.MinQuality) {
			return bad("wave %q: criteria out of range (maxErrorRate, maxPredictionShift and minQuality are 0..1, maxP99LatencyMs non-negative)", w.Name)
		}
		if last := modelfleet.LatencyBuckets[len(modelfleet.LatencyBuckets)-1] * 1000; c.MaxP99LatencyMs > last {
			return bad("wave %q: criteria: maxP99LatencyMs %g is above %g, the sites' slowest latency bucket: it could not be judged", w.Name, c.MaxP99LatencyMs, last)
		}
		for _, m := range []struct {
			name string
			v    int64
		}{{"minRequests", c.MinRequests}, {"minPredictions", c.MinPredictions}, {"minLabelled", c.MinLabelled}} {
			if m.v < 0 || m.v > maxMinSamples {
				return bad("wave %q: criteria: %s %d must be between 1 and %d (0 or absent: the default)", w.Name, m.name, m.v, maxMinSamples)
			}
		}
		if c.Any() && w.Bake == 0 {
			w.Bake = Duration(DefaultBake)
		}
		if w.Bake.Std() > maxBakeLimit || w.MaxBake.Std() > maxBakeLimit {
			return bad("wave %q: bake %s and maxBake %s must each be at most %s", w.Name, w.Bake.Std(), w.MaxBake.Std(), maxBakeLimit)
		}
		if w.MaxBake != 0 && w.MaxBake < w.Bake {
			return bad("wave %q: maxBake %s is shorter than bake %s: an inconclusive bake extends up to maxBake", w.Name, w.MaxBake.Std(), w.Bake.Std())
		}
		if c.Any() && w.MaxBake != 0 && w.MaxBake.Std() < MinAnalysisSpan {
			return bad("wave %q: maxBake %s is shorter than %s: sites report their counters every 10 s, so a shorter window may see none of them", w.Name, w.MaxBake.Std(), MinAnalysisSpan)
		}
		switch w.OnInconclusive {
		case "", OnInconclusiveFail, OnInconclusivePass, OnInconclusivePause:
		default:
			return bad("wave %q: onInconclusive %q: use %q, %q or %q", w.Name, w.OnInconclusive, OnInconclusiveFail, OnInconclusivePass, OnInconclusivePause)
		}
		if c.Any() {
			// Written out, so that `policy show` says what will happen.
			w.MaxBake, w.OnInconclusive = Duration(w.BakeLimit()), w.Inconclusive()
		}
	}
	// A selector-less wave before the last one would swallow every later wave.
	for i, w := range p.Waves[:len(p.Waves)-1] {
		if len(w.Select) == 0 {
			return bad("wave %q (waves[%d]) selects every remaining site, so waves after it would be empty: give it a selector or make it last", w.Name, i)
		}
	}
	if a := p.Approval; a != nil {
		for _, n := range a.After {
			if !names[n] {
				return bad("approval.after names wave %q, which the policy does not define", n)
			}
		}
		if a.Timeout == 0 {
			a.Timeout = Duration(DefaultApprovalTimeout)
		}
		switch {
		case a.Count == 0:
			a.Count = 1
		case a.Count < 0 || a.Count > MaxApprovals:
			return bad("approval.count %d: want 1 to %d", a.Count, MaxApprovals)
		}
		switch a.OnTimeout {
		case "":
			a.OnTimeout = OnTimeoutAbort
		case OnTimeoutAbort, OnTimeoutProceed:
		default:
			return bad("approval.onTimeout %q: use %q or %q", a.OnTimeout, OnTimeoutAbort, OnTimeoutProceed)
		}
	}
	return nil
}

// GateAfter reports whether an approval gate follows the named wave.
func (p *Policy) GateAfter(wave string) bool {
	if p.Approval == nil {
		return false
	}
	for _, n := range p.Approval.After {
		if n == wave {
			return true
		}
	}
	return false
}

// Matches reports whether labels satisfy selector (every key equal).
func Matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Plan assigns sites to waves in policy order: each site goes to the first
// wave whose selector matches it. Sites no wave selects are returned apart,
// so the release can say so instead of silently skipping them.
func (p *Policy) Plan(sites []modelfleet.Site) (waves [][]modelfleet.Site, unselected []modelfleet.Site) {
	waves = make([][]modelfleet.Site, len(p.Waves))
	for _, s := range sites {
		placed := false
		for i, w := range p.Waves {
			if Matches(w.Select, s.Labels) {
				waves[i] = append(waves[i], s)
				placed = true
				break
			}
		}
		if !placed {
			unselected = append(unselected, s)
		}
	}
	for i := range waves {
		sort.Slice(waves[i], func(a, b int) bool { return waves[i][a].ID < waves[i][b].ID })
	}
	return waves, unselected
}
