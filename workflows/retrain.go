package workflows

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/orchestrator"
)

// Results of a retraining cycle (RetrainCycle.Result).
const (
	ResultCompleted  = "completed"  // a job submitted elsewhere completed (nothing evaluated)
	ResultRegistered = "registered" // the challenger beat the champion and was registered
	ResultRejected   = "rejected"   // the challenger did not beat the champion: nothing released
	ResultFailed     = "failed"     // the job failed, or submitting, following, evaluating or registering it did
	ResultCanceled   = "canceled"   // the job was cancelled (or the workflow was)
	ResultTimedOut   = "timed-out"  // no terminal status within JobTimeout: the job was cancelled
)

// Defaults of RetrainInput.
const (
	DefaultRetrainDebounce    = 2 * time.Minute
	DefaultRetrainCooldown    = 6 * time.Hour
	DefaultRetrainJobTimeout  = 24 * time.Hour
	DefaultRetrainIdleTimeout = 25 * time.Hour
	DefaultRetrainHistory     = 10_000
	// DefaultRetrainMargin is how much better than the champion a
	// retrained challenger must score on the holdout set to be registered.
	DefaultRetrainMargin = 0.005
	// DefaultRetrainPoll is how often the polling fallback reads a job's
	// status; the gateway's run-status signal is the fast path.
	DefaultRetrainPoll = 15 * time.Second
)

// Bounds on what the workflow state keeps, so it stays small across
// continue-as-new however many events arrive.
const (
	maxSeenEvents = 1000 // event IDs remembered for dedupe
	maxTriggerLog = 100
	maxCycleLog   = 20
)

// RetrainState is the whole state machine, so a continued run resumes it
// exactly: deadlines are absolute times, not pending timers.
type RetrainState struct {
	Status       RetrainStatus               `json:"status"`
	Seen         []string                    `json:"seen,omitempty"`    // event IDs, oldest first
	Pending      []modelfleet.RetrainTrigger `json:"pending,omitempty"` // deferred by a cooldown
	Deadline     time.Time                   `json:"deadline,omitzero"` // end of the current stage
	LastFinished time.Time                   `json:"lastFinished,omitzero"`
	LastTrigger  time.Time                   `json:"lastTrigger,omitzero"`
	// Cancels are runs to cancel (a timed-out job, a submission that lost
	// its race), kept until cancelled so a continue-as-new loses none.
	Cancels []RunCancel `json:"cancels,omitempty"`
}

// RunCancel is a run the workflow still has to cancel.
type RunCancel struct {
	Cycle int               `json:"cycle"`
	Ref   activities.RunRef `json:"ref"`
}

// RetrainStatus is what the status query answers and the workflow returns.
type RetrainStatus struct {
	Model         string                `json:"model"`
	Stage         string                `json:"stage"`
	Reason        string                `json:"reason,omitempty"` // why it is in that stage
	Until         string                `json:"until,omitempty"`  // when the stage ends by itself
	Current       *RetrainCycle         `json:"current,omitempty"`
	Cycles        []RetrainCycle        `json:"cycles,omitempty"`   // finished, the last 20
	Triggers      []TriggerRecord       `json:"triggers,omitempty"` // the last 100
	TriggersTotal int                   `json:"triggersTotal"`
	Duplicates    int                   `json:"duplicates"` // redelivered events dropped
	LastRun       *modelfleet.RunStatus `json:"lastRun,omitempty"`
	StartedAt     string                `json:"startedAt,omitempty"`
	UpdatedAt     string                `json:"updatedAt,omitempty"`
}

// TriggerRecord is a trigger and what the workflow did with it.
type TriggerRecord struct {
	modelfleet.RetrainTrigger
	ReceivedAt  string `json:"receivedAt"`
	Disposition string `json:"disposition"`
}

// RetrainCycle is one retraining: the triggers it coalesced, why it ran, and
// how it ended.
type RetrainCycle struct {
	Number      int            `json:"number"`
	Triggers    int            `json:"triggers"`
	OpenedAt    string         `json:"openedAt"`
	RequestedAt string         `json:"requestedAt,omitempty"`
	Why         string         `json:"why,omitempty"`
	RunID       string         `json:"runId,omitempty"`
	RunStatus   string         `json:"runStatus,omitempty"`
	Result      string         `json:"result,omitempty"` // Result* constants
	FinishedAt  string         `json:"finishedAt,omitempty"`
	Reasons     map[string]int `json:"reasons,omitempty"` // triggers by reason

	// Submits is set when this cycle submits its own job (every cycle
	// opened since the workflow learned to; see retrainSubmitChange).
	Submits bool `json:"submits,omitempty"`
	// JobID is the job's idempotency key and name: the same on every
	// retry of the submission, unique per workflow run chain and cycle.
	JobID string `json:"jobId,omitempty"`
	// Compute is where the job runs: local, azureml-cloud, azureml-edge,
	// or external (no policy: a job submitted elsewhere).
	Compute   string             `json:"compute,omitempty"`
	ComputeID string             `json:"computeId,omitempty"`
	Run       *activities.RunRef `json:"run,omitempty"`
	// StatusFrom says which path saw the terminal status first: "signal"
	// (the gateway's run-status) or "poll" (AwaitRun).
	StatusFrom string `json:"statusFrom,omitempty"`
	Message    string `json:"message,omitempty"` // the run's failure message
	// Evaluation is the challenger against the champion on the holdout.
	Evaluation *modelfleet.Comparison `json:"evaluation,omitempty"`
	// Registered is the version the winning challenger became.
	Registered *modelfleet.ModelRef `json:"registered,omitempty"`
	// Outcome says in one sentence how the cycle ended, e.g. "rejected:
	// challenger auc 0.9100 does not beat champion 3's 0.9200 by 0.01".
	Outcome string `json:"outcome,omitempty"`
}

// Retrain is a model's retraining. Drift triggers (deduplicated by event
// ID) open a cycle; after the debounce window the cycle submits a training
// job on the compute the model's policy chooses and waits for its terminal
// status, by the gateway's run-status signal or the AwaitRun poll,
// whichever comes first, or JobTimeout (which cancels the job). A completed
// job's model, the challenger, is scored against the champion on a holdout
// set; it is registered (and so released) only if it beats the champion by
// Margin. Then a cooldown holds new triggers back. A model without a
// policy gets nothing submitted: the cycle waits for the status of a job
// submitted elsewhere, as before retraining had compute.
func Retrain(ctx workflow.Context, in modelfleet.RetrainInput) (RetrainStatus, error) {
	r, err := newRetrain(ctx, in)
	if err != nil {
		return RetrainStatus{Model: in.Model, Stage: modelfleet.RetrainClosed, Reason: err.Error()},
			temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
	}
	if err := workflow.SetQueryHandler(ctx, modelfleet.StatusQuery, func() (RetrainStatus, error) {
		return r.st.Status, nil
	}); err != nil {
		return r.st.Status, err
	}
	if err := modelfleet.ValidateName("model name", in.Model); err != nil {
		return r.st.Status, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", err)
	}
	r.index(ctx)
	triggers := workflow.GetSignalChannel(ctx, modelfleet.RetrainTriggerSignal)
	runs := workflow.GetSignalChannel(ctx, modelfleet.RunStatusSignal)
	var timer workflow.Future
	var timerAt time.Time
	cancelTimer := func() {}
	for {
		if ctx.Err() != nil {
			return r.cancelled(ctx)
		}
		if due := r.st.Deadline; !due.IsZero() && !workflow.Now(ctx).Before(due) {
			// The stage's deadline passed: move on, and close once idle for
			// IdleTimeout unless a signal is already waiting.
			if r.expire(ctx) && r.drain(ctx, triggers, runs) == 0 {
				r.setStage(ctx, modelfleet.RetrainClosed, "idle for "+r.in.IdleTimeout.String())
				return r.st.Status, nil
			}
			continue
		}
		// Continue as new only between activities: a result must not be
		// lost to a run that ended, and an abandoned AwaitRun would cancel
		// its job. Every activity is bounded, so this comes soon.
		if len(r.ops) == 0 && r.continueAsNew(ctx) {
			r.drain(ctx, triggers, runs)
			cancelTimer()
			next := r.in
			st, err := json.Marshal(r.st)
			if err != nil {
				return r.st.Status, fmt.Errorf("retrain: encode state: %w", err)
			}
			next.State = st
			return r.st.Status, workflow.NewContinueAsNewError(ctx, modelfleet.RetrainWorkflowName, next)
		}
		r.reconcile(ctx)
		if !r.st.Deadline.Equal(timerAt) {
			cancelTimer()
			timer, timerAt = nil, r.st.Deadline
			if !timerAt.IsZero() {
				tctx, cancel := workflow.WithCancel(ctx)
				timer, cancelTimer = workflow.NewTimer(tctx, timerAt.Sub(workflow.Now(ctx))), cancel
			}
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(triggers, func(c workflow.ReceiveChannel, _ bool) {
			var t modelfleet.RetrainTrigger
			c.Receive(ctx, &t)
			r.trigger(ctx, t)
		})
		sel.AddReceive(runs, func(c workflow.ReceiveChannel, _ bool) {
			var s modelfleet.RunStatus
			c.Receive(ctx, &s)
			r.runStatus(ctx, s)
		})
		if timer != nil {
			sel.AddFuture(timer, func(workflow.Future) { timerAt = time.Time{} })
		}
		r.addOps(ctx, sel)
		sel.Select(ctx)
	}
}

type retrain struct {
	in  modelfleet.RetrainInput
	st  RetrainState
	ops []*op // activities in flight; never carried across continue-as-new
}

// newRetrain applies the input's defaults and restores the state a
// continued run carries (RetrainInput.State, raw JSON of a RetrainState).
func newRetrain(ctx workflow.Context, in modelfleet.RetrainInput) (*retrain, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&in.Debounce, DefaultRetrainDebounce)
	def(&in.Cooldown, DefaultRetrainCooldown)
	def(&in.JobTimeout, DefaultRetrainJobTimeout)
	def(&in.IdleTimeout, DefaultRetrainIdleTimeout)
	if in.HistoryLimit <= 0 {
		in.HistoryLimit = DefaultRetrainHistory
	}
	def(&in.PollInterval, DefaultRetrainPoll)
	if in.Margin == nil {
		m := DefaultRetrainMargin
		in.Margin = &m
	}
	r := &retrain{in: in}
	if len(in.State) > 0 {
		if err := json.Unmarshal(in.State, &r.st); err != nil {
			return nil, fmt.Errorf("retrain: decode the carried state (input field %q): %w", "state", err)
		}
		r.in.State = nil
		return r, nil
	}
	now := workflow.Now(ctx)
	r.st.Status = RetrainStatus{Model: in.Model, Stage: modelfleet.RetrainIdle, Reason: "no trigger yet", StartedAt: stamp(ctx)}
	r.st.Deadline = now.Add(in.IdleTimeout)
	r.st.LastTrigger = now
	r.st.Status.Until = r.st.Deadline.UTC().Format(time.RFC3339)
	return r, nil
}

// trigger records one trigger and applies it to the current stage.
func (r *retrain) trigger(ctx workflow.Context, t modelfleet.RetrainTrigger) {
	if r.duplicate(t.EventID) {
		return
	}
	st := &r.st
	var disp string
	switch {
	case t.Model != "" && t.Model != r.in.Model:
		disp = fmt.Sprintf("ignored: for model %q", t.Model)
	case st.Status.Stage == modelfleet.RetrainIdle:
		r.openCycle(ctx, []modelfleet.RetrainTrigger{t})
		disp = fmt.Sprintf("opened cycle %d", st.Status.Current.Number)
	case st.Status.Stage == modelfleet.RetrainCollecting || st.Status.Stage == modelfleet.RetrainWaiting ||
		st.Status.Stage == modelfleet.RetrainEvaluating || st.Status.Stage == modelfleet.RetrainRegistering:
		st.Status.Current.add(t)
		disp = fmt.Sprintf("coalesced into cycle %d (%s)", st.Status.Current.Number, st.Status.Stage)
	case st.Status.Stage == modelfleet.RetrainCooldown:
		st.Pending = append(st.Pending, t)
		disp = "deferred: cooldown until " + st.Status.Until
	}
	if !strings.HasPrefix(disp, "ignored") {
		st.Status.TriggersTotal++
		st.LastTrigger = workflow.Now(ctx)
	}
	rec := TriggerRecord{RetrainTrigger: t, ReceivedAt: stamp(ctx), Disposition: disp}
	st.Status.Triggers = keepLast(append(st.Status.Triggers, rec), maxTriggerLog)
	st.Status.UpdatedAt = stamp(ctx)
}

// runStatus applies a status of the retraining job: a terminal one, while
// the workflow waits for the job, ends the cycle.
func (r *retrain) runStatus(ctx workflow.Context, s modelfleet.RunStatus) {
	if r.duplicate(s.EventID) {
		return
	}
	st := &r.st.Status
	st.LastRun = &s
	st.UpdatedAt = stamp(ctx)
	c := st.Current
	if st.Stage != modelfleet.RetrainWaiting || c == nil || (c.RunID != "" && c.RunID != s.RunID) {
		return // not the job this cycle waits for: recorded in LastRun only
	}
	_, done := terminal(s.Status)
	switch {
	case !c.Submits || c.Compute == modelfleet.ComputeExternal:
		// A job submitted elsewhere: its first status names it.
		c.RunID, c.RunStatus = s.RunID, s.Status
		if done {
			c.StatusFrom = "signal"
			r.endRun(ctx, s.Status, "")
		}
	case c.Compute == "" && s.RunID != c.JobID:
		// Our submission is in flight and another job tagged for this
		// model ended: the cycle takes it (as it did before it could
		// submit) and cancels its own.
		if done {
			c.RunID, c.RunStatus, c.StatusFrom = s.RunID, s.Status, "signal"
			r.stopOps(c.Number, opSubmit)
			r.st.Cancels = append(r.st.Cancels, RunCancel{Cycle: c.Number, Ref: activities.RunRef{ID: c.JobID, Model: r.in.Model}})
			r.endRun(ctx, s.Status, "taken as this cycle's job while its own submission was in flight")
		}
	default:
		c.RunID, c.RunStatus = s.RunID, s.Status
		if done {
			r.observeTerminal(ctx, s.Status, "signal", "")
		}
	}
}

// expire moves on from a stage whose deadline passed; it reports whether
// the workflow may close (idle for IdleTimeout).
func (r *retrain) expire(ctx workflow.Context) bool {
	st := &r.st
	switch st.Status.Stage {
	case modelfleet.RetrainCollecting:
		r.requestRetraining(ctx)
	case modelfleet.RetrainWaiting:
		r.timedOut(ctx)
	case modelfleet.RetrainCooldown:
		if len(st.Pending) > 0 {
			pending := st.Pending
			st.Pending = nil
			r.openCycle(ctx, pending)
		} else {
			r.idle(ctx, "cooldown over, no trigger pending")
		}
	case modelfleet.RetrainIdle:
		return true
	}
	return false
}

func (r *retrain) openCycle(ctx workflow.Context, ts []modelfleet.RetrainTrigger) {
	st := &r.st.Status
	n := 1
	if len(st.Cycles) > 0 {
		n = st.Cycles[len(st.Cycles)-1].Number + 1
	}
	st.Current = &RetrainCycle{Number: n, OpenedAt: stamp(ctx)}
	for _, t := range ts {
		st.Current.add(t)
	}
	r.st.Deadline = workflow.Now(ctx).Add(r.in.Debounce)
	r.setStage(ctx, modelfleet.RetrainCollecting, fmt.Sprintf("debounce: waiting %s for more triggers", r.in.Debounce))
}

// requestRetraining ends the debounce: the cycle now submits its job (the
// SubmitRetraining activity, started by reconcile) and waits for it.
func (r *retrain) requestRetraining(ctx workflow.Context) {
	c := r.st.Status.Current
	c.RequestedAt = stamp(ctx)
	c.Why = c.why(r.in.Debounce)
	r.st.Deadline = workflow.Now(ctx).Add(r.in.JobTimeout)
	if workflow.GetVersion(ctx, retrainSubmitChange, workflow.DefaultVersion, 1) >= 1 {
		c.Submits, c.JobID = true, jobID(ctx, r.in.Model, c.Number)
	}
	r.setStage(ctx, modelfleet.RetrainWaiting, "retraining requested: "+c.Why)
}

func (r *retrain) finish(ctx workflow.Context, result, outcome string) {
	st := &r.st
	c := st.Status.Current
	c.Result, c.FinishedAt, c.Outcome = result, stamp(ctx), outcome
	st.Status.Cycles = keepLast(append(st.Status.Cycles, *c), maxCycleLog)
	st.Status.Current = nil
	st.LastFinished = workflow.Now(ctx)
	st.Deadline = st.LastFinished.Add(r.in.Cooldown)
	r.setStage(ctx, modelfleet.RetrainCooldown, fmt.Sprintf("cycle %d %s; no retraining for %s", c.Number, result, r.in.Cooldown))
	workflow.GetLogger(ctx).Info("retraining cycle ended", "cycle", c.Number, "result", result, "outcome", outcome)
}

func (r *retrain) idle(ctx workflow.Context, why string) {
	r.st.Deadline = r.st.LastTrigger.Add(r.in.IdleTimeout)
	if now := workflow.Now(ctx); r.st.Deadline.Before(now) {
		r.st.Deadline = now
	}
	r.setStage(ctx, modelfleet.RetrainIdle, why)
}

// duplicate reports whether the event was seen, and remembers it if not.
// An event without ID cannot be deduplicated and is taken as new.
func (r *retrain) duplicate(id string) bool {
	if id == "" {
		return false
	}
	for _, s := range r.st.Seen {
		if s == id {
			r.st.Status.Duplicates++
			return true
		}
	}
	r.st.Seen = keepLast(append(r.st.Seen, id), maxSeenEvents)
	return false
}

// drain handles every signal already delivered, before the run returns or
// continues as new, so none is lost; it returns how many there were.
func (r *retrain) drain(ctx workflow.Context, triggers, runs workflow.ReceiveChannel) int {
	n := 0
	for {
		var t modelfleet.RetrainTrigger
		var s modelfleet.RunStatus
		switch {
		case triggers.ReceiveAsync(&t):
			r.trigger(ctx, t)
		case runs.ReceiveAsync(&s):
			r.runStatus(ctx, s)
		default:
			return n
		}
		n++
	}
}

func (r *retrain) continueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= r.in.HistoryLimit
}

func (r *retrain) setStage(ctx workflow.Context, stage, reason string) {
	st := &r.st.Status
	changed := st.Stage != stage
	st.Stage, st.Reason, st.UpdatedAt = stage, reason, stamp(ctx)
	st.Until = ""
	if !r.st.Deadline.IsZero() && stage != modelfleet.RetrainClosed {
		st.Until = r.st.Deadline.UTC().Format(time.RFC3339)
	}
	if changed {
		r.index(ctx)
	}
}

// index upserts the search attributes; failing to is not worth failing for.
func (r *retrain) index(ctx workflow.Context) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, orchestrator.ModelAttr.ValueSet(r.in.Model), orchestrator.StageAttr.ValueSet(r.st.Status.Stage))
}

func (c *RetrainCycle) add(t modelfleet.RetrainTrigger) {
	c.Triggers++
	if c.Reasons == nil {
		c.Reasons = map[string]int{}
	}
	c.Reasons[t.Reason]++
}

// why says what the cycle coalesced, for the status and the audit trail.
func (c *RetrainCycle) why(debounce time.Duration) string {
	var parts []string
	for _, reason := range slices.Sorted(maps.Keys(c.Reasons)) { // sorted: deterministic
		parts = append(parts, fmt.Sprintf("%s x%d", reason, c.Reasons[reason]))
	}
	return fmt.Sprintf("%d trigger(s) (%s) within the %s debounce", c.Triggers, strings.Join(parts, ", "), debounce)
}

// terminal maps Azure ML's final run statuses (any case; Azure ML spells
// Canceled, older SDKs Cancelled) to a cycle result.
func terminal(status string) (string, bool) {
	switch strings.ToLower(status) {
	case "completed":
		return ResultCompleted, true
	case "failed":
		return ResultFailed, true
	case "canceled", "cancelled":
		return ResultCanceled, true
	}
	return "", false
}

func keepLast[T any](s []T, n int) []T {
	if len(s) > n {
		return append(s[:0:0], s[len(s)-n:]...)
	}
	return s
}
