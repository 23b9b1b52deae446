// Package orchestratortest holds Fake, an in-memory modelfleet.Orchestrator
// for the tests of the orchestrator's callers (the gateway's dispatcher,
// the drift monitor's sink, the CLI). It keeps the contract's error codes
// and the reuse rules of each kind of workflow, so a caller's handling of
// "already ran", "already running" and "not running" can be tested
// without Temporal; package orchestrator's own tests pin what it asks of
// Temporal.
package orchestratortest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/modelfleet/modelfleet"
)

// Methods of modelfleet.Orchestrator, as Call.Method names them.
const (
	StartRelease         = "StartRelease"
	StartWorkloadRelease = "StartWorkloadRelease"
	TriggerRetrain       = "TriggerRetrain"
	SignalRunStatus      = "SignalRunStatus"
	SignalControl        = "SignalControl"
	SignalVerdict        = "SignalVerdict"
	ReleaseStatus        = "ReleaseStatus"
	ListReleases         = "ListReleases"
	Champion             = "Champion"
)

// Call is one call the Fake received, failed or not.
type Call struct {
	Method     string
	WorkflowID string // the workflow it concerns; "" for ListReleases and Champion
	Signal     string // the signal it sends, if any
	// Input is what a start passes: a ReleaseInput, WorkloadReleaseInput
	// or RetrainInput (as the caller gave it).
	Input any
	// Payload is the signal's: a RetrainTrigger, RunStatus, Control or
	// MonitorVerdict.
	Payload any
}

// Fake is an in-memory modelfleet.Orchestrator; its methods keep the
// interface's contract. Its zero value is ready: no workflow runs, none
// ran. A start starts the workflow (SetRunning), Close ends it. Set its fields before the calls; its methods
// are safe for concurrent use.
type Fake struct {
	// Err, if set, is what every call returns after it is recorded
	// (Temporal unreachable, say); Errs by method name overrides it.
	Err  error
	Errs map[string]error
	// Statuses answers ReleaseStatus by workflow ID; a missing ID is
	// ENOTFOUND.
	Statuses map[string]modelfleet.ReleaseStatus
	// Releases answers ListReleases (filtered by model, limited).
	Releases []modelfleet.ReleaseSummary
	// Champions answers Champion by model.
	Champions map[string]string
	// ControlKeys, as orchestrator.Temporal's: if set, they replace the
	// keys of a start's input, and the recorded Call.Input has them.
	ControlKeys []modelfleet.TrustedKey

	mu      sync.Mutex
	calls   []Call
	running map[string]string // workflow ID -> run ID
	closed  map[string]bool
	runs    int
}

var _ modelfleet.Orchestrator = (*Fake)(nil)

// SetRunning marks workflows as running, as if started before.
func (f *Fake) SetRunning(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.start(id)
	}
}

// Close ends running workflows (or records them as having run).
func (f *Fake) Close(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.running, id)
		if f.closed == nil {
			f.closed = map[string]bool{}
		}
		f.closed[id] = true
	}
}

// Running reports whether the workflow id runs.
func (f *Fake) Running(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.running[id]
	return ok
}

// Calls returns the calls received so far, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallsTo returns the calls of one method.
func (f *Fake) CallsTo(method string) []Call {
	var out []Call
	for _, c := range f.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// record records c and returns the error the fake was told to fail it
// with. f.mu is held.
func (f *Fake) record(c Call) error {
	f.calls = append(f.calls, c)
	if err, ok := f.Errs[c.Method]; ok {
		return err
	}
	return f.Err
}

// start starts id; f.mu is held.
func (f *Fake) start(id string) modelfleet.Run {
	if f.running == nil {
		f.running = map[string]string{}
	}
	f.runs++
	run := modelfleet.Run{WorkflowID: id, RunID: fmt.Sprintf("run-%d", f.runs)}
	f.running[id] = run.RunID
	return run
}

// controlKeys are the keys a start passes: f.ControlKeys if set, else
// the caller's.
func (f *Fake) controlKeys(given []modelfleet.TrustedKey) []modelfleet.TrustedKey {
	if len(f.ControlKeys) > 0 {
		return slices.Clone(f.ControlKeys)
	}
	return given
}

func (f *Fake) StartRelease(_ context.Context, in modelfleet.ReleaseInput) (modelfleet.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := modelfleet.ReleaseWorkflowID(in.Model)
	in.ControlKeys = f.controlKeys(in.ControlKeys)
	if err := f.record(Call{Method: StartRelease, WorkflowID: id, Input: in}); err != nil {
		return modelfleet.Run{}, err
	}
	if err := in.Model.Validate(); err != nil {
		return modelfleet.Run{}, err
	}
	if runID, ok := f.running[id]; ok {
		return modelfleet.Run{WorkflowID: id, RunID: runID}, nil
	}
	if f.closed[id] {
		return modelfleet.Run{}, modelfleet.Errorf(modelfleet.ECONFLICT, "release %s already ran", id)
	}
	return f.start(id), nil
}

func (f *Fake) StartWorkloadRelease(_ context.Context, in modelfleet.WorkloadReleaseInput) (modelfleet.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := modelfleet.WorkloadReleaseWorkflowID(in.Model, in.Workload)
	in.ControlKeys = f.controlKeys(in.ControlKeys)
	if err := f.record(Call{Method: StartWorkloadRelease, WorkflowID: id, Input: in}); err != nil {
		return modelfleet.Run{}, err
	}
	if err := modelfleet.ValidateName("model name", in.Model); err != nil {
		return modelfleet.Run{}, err
	}
	if _, err := modelfleet.ParseWorkloadRef(in.Workload.String()); err != nil {
		return modelfleet.Run{}, err
	}
	if _, ok := f.running[id]; ok {
		return modelfleet.Run{}, modelfleet.Errorf(modelfleet.ECONFLICT, "release %s is already running", id)
	}
	return f.start(id), nil
}

func (f *Fake) TriggerRetrain(_ context.Context, in modelfleet.RetrainInput, t modelfleet.RetrainTrigger) (modelfleet.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := modelfleet.RetrainWorkflowID(t.Model)
	if err := f.record(Call{Method: TriggerRetrain, WorkflowID: id, Signal: modelfleet.RetrainTriggerSignal, Input: in, Payload: t}); err != nil {
		return modelfleet.Run{}, err
	}
	if err := modelfleet.ValidateName("model name", t.Model); err != nil {
		return modelfleet.Run{}, err
	}
	if runID, ok := f.running[id]; ok {
		return modelfleet.Run{WorkflowID: id, RunID: runID}, nil
	}
	return f.start(id), nil
}

// signal records a signal to id and answers, after any error the fake was
// told to fail with, invalid, else ENOTFOUND unless id runs; f.mu is held.
func (f *Fake) signal(c Call, invalid error) error {
	if err := f.record(c); err != nil {
		return err
	}
	if invalid != nil {
		return invalid
	}
	if _, ok := f.running[c.WorkflowID]; !ok {
		return modelfleet.Errorf(modelfleet.ENOTFOUND, "no workflow %s is running", c.WorkflowID)
	}
	return nil
}

func (f *Fake) SignalRunStatus(_ context.Context, s modelfleet.RunStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Call{Method: SignalRunStatus, WorkflowID: modelfleet.RetrainWorkflowID(s.Model), Signal: modelfleet.RunStatusSignal, Payload: s}
	return f.signal(c, modelfleet.ValidateName("model name", s.Model))
}

func (f *Fake) SignalControl(_ context.Context, releaseID, action string, ctl modelfleet.Control) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var invalid error
	if !slices.Contains(modelfleet.Signals, action) || !strings.HasPrefix(releaseID, "release/") {
		invalid = modelfleet.Errorf(modelfleet.EINVALID, "control %q of %q is invalid", action, releaseID)
	}
	return f.signal(Call{Method: SignalControl, WorkflowID: releaseID, Signal: action, Payload: ctl}, invalid)
}

func (f *Fake) SignalVerdict(_ context.Context, releaseID string, v modelfleet.MonitorVerdict) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.signal(Call{Method: SignalVerdict, WorkflowID: releaseID, Signal: modelfleet.SignalMonitorVerdict, Payload: v}, nil)
}

func (f *Fake) ReleaseStatus(_ context.Context, releaseID string) (modelfleet.ReleaseStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: ReleaseStatus, WorkflowID: releaseID}); err != nil {
		return modelfleet.ReleaseStatus{}, err
	}
	if !strings.HasPrefix(releaseID, "release/") {
		return modelfleet.ReleaseStatus{}, modelfleet.Errorf(modelfleet.EINVALID, "%q is not a release's workflow ID", releaseID)
	}
	st, ok := f.Statuses[releaseID]
	if !ok {
		return modelfleet.ReleaseStatus{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "no release %q", releaseID)
	}
	return st, nil
}

func (f *Fake) ListReleases(_ context.Context, model string, limit int) ([]modelfleet.ReleaseSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: ListReleases, Input: model}); err != nil {
		return nil, err
	}
	if model != "" {
		if err := modelfleet.ValidateName("model name", model); err != nil {
			return nil, err
		}
	}
	out := []modelfleet.ReleaseSummary{}
	for _, r := range f.Releases {
		if model != "" && r.Model.Name != model {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *Fake) Champion(_ context.Context, model string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: Champion, Input: model}); err != nil {
		return "", err
	}
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return "", err
	}
	return f.Champions[model], nil
}
