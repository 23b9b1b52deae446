package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/orchestrator"
)

const modelName = "bearing-failure"

// The policies the releases follow. Every wave takes its sites in one batch
// straight to 100% with no bake, so what is measured is the machinery:
// desired-state writes, the sites' pull, download, verify, load and report,
// the aggregated acknowledgements and the workflow between them.
const (
	wavesYAML = `apiVersion: modelfleet/v1
waves:
  - {name: canary, select: {ring: canary}, steps: [100], bake: 0s}
  - {name: r1, select: {ring: r1}, steps: [100], bake: 0s}
  - {name: r2, select: {ring: r2}, steps: [100], bake: 0s}
  - {name: fleet, steps: [100], bake: 0s, failureBudget: 0}
`
	// The gate after r2 is where the benchmark breaks the last wave (or
	// rejects): a release cannot be rolled back once its last wave is done.
	gatedYAML = wavesYAML + `approval: {after: [r2], timeout: 1h, onTimeout: abort}
`
)

type bench struct {
	o           options
	s           *stack
	ex          example
	n           int
	out         io.Writer
	temporalPID int
	dev         uint64 // the data dir's device, for its disk counters
}

// result is one fleet size's figures.
type result struct {
	sites          int
	transport      string
	setup          time.Duration
	rollout        time.Duration // registration → release closed
	rollback       time.Duration // breach detected → release closed, every touched site restored
	restored       int           // sites serving version 1 again after the breach
	reject         time.Duration // reject signal → release closed
	rejectRestored int
	maxHistory     int
	maxHistoryID   string
	events         int // all workflow runs of the size's run
	actions        int
	releaseActions int // the rollout release alone
	flux           time.Duration
	peak           peaks
}

func (r result) line() string {
	return fmt.Sprintf("size sites=%d transport=%s rollout_s=%.2f rollback_s=%.2f restored=%d reject_rollback_s=%.2f reject_restored=%d max_history_events=%d events_per_site=%.3f actions_per_site=%.3f rollout_actions_per_site=%.4f flux_pickup_s=%.1f setup_s=%.1f peak_%s",
		r.sites, r.transport, r.rollout.Seconds(), r.rollback.Seconds(), r.restored, r.reject.Seconds(), r.rejectRestored,
		r.maxHistory, float64(r.events)/float64(r.sites), float64(r.actions)/float64(r.sites),
		float64(r.releaseActions)/float64(r.sites), r.flux.Seconds(), r.setup.Seconds(), strings.ReplaceAll(r.peak.String(), " ", " peak_"))
}

// printTargets compares with the targets, where one applies.
func (r result) printTargets(w io.Writer) {
	check := func(what string, got, limit float64, unit string) {
		verdict := "met"
		if got > limit {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  target %-34s %8.2f%s <= %g%s  %s\n", what, got, unit, limit, unit, verdict)
	}
	switch r.sites {
	case 1000:
		check("rollout, 1,000 sites", r.rollout.Seconds(), 15, "s")
		check("rollback, 1,000 sites", r.rollback.Seconds(), 5, "s")
	case 10000:
		check("rollout, 10,000 sites", r.rollout.Seconds(), 120, "s")
		check("rollback, 10,000 sites", r.rollback.Seconds(), 5, "s")
	}
	check(fmt.Sprintf("max history events, %d sites", r.sites), float64(r.maxHistory), 10000, "")
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(b.out, format, args...) }

// rollout: version 1 to every site through the four waves.
func (b *bench) rollout(ctx context.Context, r *result) error {
	if err := b.putPolicy(wavesYAML); err != nil {
		return err
	}
	d, h, err := b.rolloutVersion(ctx, "1", b.ex.artifact)
	if err != nil {
		return err
	}
	r.rollout = d
	r.releaseActions = h.actions()
	b.printf("  every site serves 1 at 100%%; the release's history: %d events, %d actions (%.4f per site)\n",
		len(h.events), h.actions(), float64(h.actions())/float64(b.n))
	return nil
}

// rolloutVersion registers version (artifact) under the current policy and
// waits for its release to succeed with every site serving it at 100%: the
// time from registration to the release's close.
func (b *bench) rolloutVersion(ctx context.Context, version string, artifact []byte) (time.Duration, history, error) {
	before, use := b.s.meter.snapshot(), b.usage()
	t0 := time.Now()
	m, err := b.register(ctx, version, artifact)
	if err != nil {
		return 0, history{}, err
	}
	ref := m.ModelRef
	st, h, err := b.await(ctx, ref)
	if err != nil || st.State != modelfleet.StateSucceeded {
		return 0, h, fmt.Errorf("release %s did not succeed (%v): %s", ref, err, b.explain(ctx, ref))
	}
	if b.s.trust != nil && !st.Signed {
		return 0, h, fmt.Errorf("release %s of a stack with release keys was not signed", ref)
	}
	d := h.end().Sub(t0)
	b.printf("  rollout of %s: %.2fs from registration to release succeeded; %s\n    %s\n", ref, d.Seconds(), b.s.meter.snapshot().minus(before), b.usage().since(use, b.n))
	h.printTimeline(b.out, t0)
	if got := b.serving(version + ":100"); got != b.n {
		return 0, h, fmt.Errorf("after release %s, %d of %d sites serve %s:100 (%v)", ref, got, b.n, version, b.splits())
	}
	return d, h, nil
}

// breach: version 2 reaches the first three waves, then its artifact
// becomes unavailable, the last wave's sites fail to apply it, the wave's
// budget of 0 failures is exceeded and the release rolls every touched site
// back on its own.
func (b *bench) breach(ctx context.Context, r *result) error {
	if err := b.putPolicy(gatedYAML); err != nil {
		return err
	}
	// Different bytes, so a different digest: refusing it cannot affect
	// version 1, which the sites go back to. A trailing newline is ignored
	// by the LightGBM text parser (the release's validation loads it).
	artifact := append(bytes.Clone(b.ex.artifact), '\n')
	m, err := b.register(ctx, "2", artifact)
	if err != nil {
		return err
	}
	ref := m.ModelRef
	id := modelfleet.ReleaseWorkflowID(ref)
	if err := b.awaitStage(ctx, ref, modelfleet.StateAwaitingApproval); err != nil {
		return err
	}
	onNew := b.serving("2:100")
	b.s.blobs.block(m.Digest)
	defer b.s.blobs.unblock()
	before, use := b.s.meter.snapshot(), b.usage()
	approved := time.Now()
	if err := b.signal(ctx, id, modelfleet.SignalApprove, "benchmark: roll the last wave out (its artifact is now unavailable)"); err != nil {
		return err
	}
	stopProfile := b.profileRollback(ctx, ref)
	_, h, werr := b.await(ctx, ref)
	if err := stopProfile(); err != nil {
		return err
	}
	st, err := orchestrator.New(b.s.client).ReleaseStatus(ctx, modelfleet.ReleaseWorkflowID(ref))
	if err != nil {
		return err
	}
	at := h.breachAt()
	if st.State != modelfleet.StateRolledBack || at.IsZero() {
		return fmt.Errorf("release %s was not rolled back after a breach (%v): %s", ref, werr, b.explain(ctx, ref))
	}
	r.rollback = h.end().Sub(at)
	r.restored = b.serving("1:100")
	b.printf("  breach of %s: %d sites on 2 at the gate; approve → breach %.2fs, breach → rolled back %.2fs; %d/%d sites serve 1:100 again; %s\n    %s\n",
		ref, onNew, at.Sub(approved).Seconds(), r.rollback.Seconds(), r.restored, b.n, b.s.meter.snapshot().minus(before), b.usage().since(use, b.n))
	b.printf("    reason: %s\n", st.Reason)
	h.printTimeline(b.out, approved)
	if r.restored != b.n {
		return fmt.Errorf("after the rollback of %s, %d of %d sites serve 1:100 (%v)", ref, r.restored, b.n, b.splits())
	}
	return nil
}

// reject: version 3, the same bytes as version 1 under a new version (the
// registry accepts that: versions are immutable, content may repeat), to the
// gate, where an operator rejects it.
func (b *bench) reject(ctx context.Context, r *result) error {
	m, err := b.register(ctx, "3", b.ex.artifact)
	if err != nil {
		return err
	}
	ref := m.ModelRef
	id := modelfleet.ReleaseWorkflowID(ref)
	if err := b.awaitStage(ctx, ref, modelfleet.StateAwaitingApproval); err != nil {
		return err
	}
	onNew := b.serving("3:100")
	before, use := b.s.meter.snapshot(), b.usage()
	sent := time.Now()
	if err := b.signal(ctx, id, modelfleet.SignalReject, "benchmark: reject at the gate"); err != nil {
		return err
	}
	st, h, err := b.await(ctx, ref)
	if err != nil || st.State != modelfleet.StateRolledBack {
		return fmt.Errorf("release %s after reject (%v): %s", ref, err, b.explain(ctx, ref))
	}
	r.reject = h.end().Sub(h.signaledAt(modelfleet.SignalReject))
	r.rejectRestored = onNew
	b.printf("  reject of %s: %d sites on 3 at the gate rolled back in %.2fs (signal → closed); %s\n    %s\n",
		ref, onNew, r.reject.Seconds(), b.s.meter.snapshot().minus(before), b.usage().since(use, b.n))
	h.printTimeline(b.out, sent)
	if got := b.serving("1:100"); got != b.n {
		return fmt.Errorf("after rejecting %s, %d of %d sites serve 1:100 (%v)", ref, got, b.n, b.splits())
	}
	return nil
}

// cost reads back every workflow history of this size's run.
func (b *bench) cost(ctx context.Context, r *result) error {
	hs, err := allHistories(ctx, b.s.client)
	if err != nil {
		return err
	}
	for _, h := range hs {
		r.events += len(h.events)
		r.actions += h.actions()
		if len(h.events) > r.maxHistory {
			r.maxHistory, r.maxHistoryID = len(h.events), h.id
		}
	}
	b.printf("  temporal: %d workflow runs, %d history events (%.3f per site), %d actions (%.3f per site); largest history %d events (%s)\n",
		len(hs), r.events, float64(r.events)/float64(b.n), r.actions, float64(r.actions)/float64(b.n), r.maxHistory, r.maxHistoryID)
	return nil
}

// register stores a version in the embedded registry, whose outbox then
// delivers ModelRegistered to the gateway, which starts the release.
func (b *bench) register(ctx context.Context, version string, artifact []byte) (modelfleet.Model, error) {
	c := b.ex.card
	m := modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: modelName, Version: version},
		Format:   c.Format, Features: c.Features, Tags: c.Tags, Properties: c.Properties,
		Validation: &modelfleet.ValidationSpec{Metric: c.Validation.Metric, Threshold: c.Validation.Threshold},
	}
	got, created, err := b.s.registry.Register(ctx, m, bytes.NewReader(artifact), bytes.NewReader(b.ex.validation))
	if err != nil {
		return m, fmt.Errorf("register %s: %w", m.ModelRef, err)
	}
	if !created {
		return m, fmt.Errorf("register %s: already registered, so no release would start", m.ModelRef)
	}
	return got, nil
}

func (b *bench) putPolicy(doc string) error {
	_, err := b.s.gateway.Directory.PutPolicy(modelName, []byte(doc))
	return err
}

func (b *bench) signal(ctx context.Context, id, name, reason string) error {
	return orchestrator.New(b.s.client).SignalControl(ctx, id, name, modelfleet.Control{By: "bench-rollout", Reason: reason})
}

// await waits for the release to exist (the event reaches the gateway
// asynchronously), then for it to close, and reads its history.
func (b *bench) await(ctx context.Context, ref modelfleet.ModelRef) (modelfleet.ReleaseStatus, history, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	id := modelfleet.ReleaseWorkflowID(ref)
	var st modelfleet.ReleaseStatus
	if _, err := b.describe(ctx, id); err != nil {
		return st, history{}, err
	}
	werr := b.s.client.GetWorkflow(ctx, id, "").Get(ctx, &st)
	if ctx.Err() != nil {
		return st, history{}, fmt.Errorf("%s did not finish within %s", id, b.o.timeout)
	}
	h, err := readHistory(ctx, b.s.client, id, "")
	if err != nil {
		return st, h, err
	}
	return st, h, werr
}

// awaitStage polls the release's ModelfleetStage search attribute (cheap,
// unlike the status query, whose answer lists every site).
func (b *bench) awaitStage(ctx context.Context, ref modelfleet.ModelRef, stage string) error {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	id := modelfleet.ReleaseWorkflowID(ref)
	for {
		info, err := b.describe(ctx, id)
		if err != nil {
			return err
		}
		var got string
		if p := info.GetSearchAttributes().GetIndexedFields()[orchestrator.StageAttr.GetName()]; p != nil {
			_ = converter.GetDefaultDataConverter().FromPayload(p, &got)
		}
		if got == stage {
			return nil
		}
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return fmt.Errorf("%s closed (%s) before reaching %q: %s", id, info.GetStatus(), stage, b.explain(ctx, ref))
		}
		if err := modelfleet.Sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("%s did not reach %q within %s (stage %q)", id, stage, b.o.timeout, got)
		}
	}
}

// explain says why a release ended: its state and reason, and the first
// failed sites with theirs.
func (b *bench) explain(ctx context.Context, ref modelfleet.ModelRef) string {
	st, err := orchestrator.New(b.s.client).ReleaseStatus(ctx, modelfleet.ReleaseWorkflowID(ref))
	if err != nil {
		return err.Error()
	}
	msg := fmt.Sprintf("state %s: %s", st.State, st.Reason)
	n := 0
	for _, s := range st.Sites {
		if s.State == modelfleet.SiteFailed {
			if n < 3 {
				msg += fmt.Sprintf("; %s failed: %s", s.Site, s.Reason)
			}
			n++
		}
	}
	if n > 3 {
		msg += fmt.Sprintf("; and %d more failed sites", n-3)
	}
	return msg
}

// describe waits until the workflow exists and describes it.
func (b *bench) describe(ctx context.Context, id string) (*workflowpb.WorkflowExecutionInfo, error) {
	for {
		d, err := b.s.client.DescribeWorkflowExecution(ctx, id, "")
		if err == nil {
			return d.GetWorkflowExecutionInfo(), nil
		}
		var nf *serviceerror.NotFound
		var busy *serviceerror.DeadlineExceeded
		// On a machine busy enough, the dev server can miss the call's
		// own deadline while the benchmark's is far off: ask again.
		transient := errors.As(err, &busy) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil)
		if !errors.As(err, &nf) && !transient {
			return nil, fmt.Errorf("describe %s: %w", id, err)
		}
		if err := modelfleet.Sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%s was never started: %w", id, err)
		}
	}
}

// serving counts the sites whose router splits the model exactly as want
// ("1:100"), read from the agents themselves.
func (b *bench) serving(want string) int {
	n := 0
	for _, e := range b.s.edges {
		if splitString(e.Edge.Traffic(modelName)) == want {
			n++
		}
	}
	return n
}

// splits summarises what the fleet serves, for error messages.
func (b *bench) splits() map[string]int {
	out := map[string]int{}
	for _, e := range b.s.edges {
		out[splitString(e.Edge.Traffic(modelName))]++
	}
	return out
}

func splitString(w map[string]int) string {
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s:%d", v, w[v]))
	}
	return strings.Join(parts, ",")
}

// profileRollback, with -breach-profile, profiles the release's rollback:
// from when its stage turns rolling-back (polled every 50ms) until stop.
func (b *bench) profileRollback(ctx context.Context, ref modelfleet.ModelRef) (stop func() error) {
	if b.o.breachProfile == "" {
		return func() error { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	started := make(chan func(), 1)
	errc := make(chan error, 1)
	go func() {
		if err := b.awaitStage(ctx, ref, modelfleet.StateRollingBack); err != nil {
			errc <- err
			return
		}
		stop, err := startPhaseProfile(b.o.breachProfile, b.o.breachTrace)
		if err != nil {
			errc <- err
			return
		}
		started <- stop
	}()
	return func() error {
		cancel()
		select {
		case stop := <-started:
			stop()
			return nil
		case err := <-errc:
			// The release closed before a poll saw it rolling back.
			b.printf("  -breach-profile: no profile: %v\n", err)
			return nil
		}
	}
}

// startPhaseProfile starts a CPU profile (<prefix>.cpu) of one phase and,
// with withTrace, an execution trace (<prefix>.trace: it slows 10,000
// sites down several times over); stop ends both. It also writes the
// allocations so far at the start (<prefix>.allocs0) and at the stop
// (<prefix>.allocs1): `go tool pprof -base <prefix>.allocs0
// <prefix>.allocs1` is roughly what the phase allocated — roughly, as an
// allocation profile is as of the last completed garbage collection, which
// with the gigabytes 10,000 sites hold can be seconds earlier; and the
// phase's exact totals from runtime/metrics (<prefix>.runtime: bytes and
// objects allocated, garbage collections). No prefix: nothing.
func startPhaseProfile(prefix string, withTrace bool) (stop func(), err error) {
	if prefix == "" {
		return func() {}, nil
	}
	if err := writeAllocs(prefix + ".allocs0"); err != nil {
		return nil, err
	}
	before := readRuntime()
	cpu, err := os.Create(prefix + ".cpu")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	stopCPU := func() {
		pprof.StopCPUProfile()
		cpu.Close()
		after := readRuntime()
		_ = writeAllocs(prefix + ".allocs1")
		_ = os.WriteFile(prefix+".runtime", []byte(after.minus(before).String()+"\n"), 0o644)
	}
	if !withTrace {
		return stopCPU, nil
	}
	tr, err := os.Create(prefix + ".trace")
	if err != nil {
		stopCPU()
		return nil, err
	}
	if err := trace.Start(tr); err != nil {
		stopCPU()
		tr.Close()
		return nil, err
	}
	return func() {
		trace.Stop()
		tr.Close()
		stopCPU()
	}, nil
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// runtimeFigures are the process's own counters (runtime/metrics), exact
// where an allocation profile lags: what a phase allocated and how many
// garbage collections it ran. (The runtime's CPU classes are P-time, not
// CPU: on a busy machine they count time a P waited for one; the CPU
// profile says what ran.)
type runtimeFigures struct {
	allocBytes, allocObjects, gcCycles uint64
}

var runtimeSamples = []string{"/gc/heap/allocs:bytes", "/gc/heap/allocs:objects", "/gc/cycles/total:gc-cycles"}

func readRuntime() runtimeFigures {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, n := range runtimeSamples {
		s[i].Name = n
	}
	metrics.Read(s)
	return runtimeFigures{s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()}
}

func (r runtimeFigures) minus(o runtimeFigures) runtimeFigures {
	return runtimeFigures{r.allocBytes - o.allocBytes, r.allocObjects - o.allocObjects, r.gcCycles - o.gcCycles}
}

func (r runtimeFigures) String() string {
	return fmt.Sprintf("allocated_mib=%.0f allocated_objects=%d gc_cycles=%d", float64(r.allocBytes)/(1<<20), r.allocObjects, r.gcCycles)
}
