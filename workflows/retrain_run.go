package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
)

// The retraining's compute: submit the job, follow it (signal or poll),
// evaluate the challenger, register it. Activities run beside the signal
// loop of Retrain, so triggers keep coalescing while a job runs; each is an
// op, started by reconcile from the state alone, which is what lets a
// continued run pick up where the previous one stopped.
//
// Replay safety: before this file, Retrain ran no activity. Cycles opened
// by workers of that version asked for no job; the GetVersion marker
// retrainSubmitChange keeps a history recorded then replaying as it ran
// (its cycles carry Submits=false and wait for a job from elsewhere).
// TestReplay replays testdata/retrain_*.json, recorded from the embedded
// stack (`temporal workflow show -w retrain/<model> -o json`): a full
// cycle on local compute, through registration and into the cooldown.

// retrainSubmitChange versions the change that made cycles submit jobs.
const retrainSubmitChange = "retrain-submits-jobs"

// retrainAwaitWindow is how long one AwaitRun follows a job before it
// returns and is called again: it keeps each activity short, so the
// workflow can continue as new between them.
const retrainAwaitWindow = 10 * time.Minute

// Kinds of op.
const (
	opSubmit   = "submit"
	opAwait    = "await"
	opEvaluate = "evaluate"
	opRegister = "register"
	opCancel   = "cancel"
)

// op is an activity in flight.
type op struct {
	kind   string
	cycle  int
	key    string // opCancel: the run
	f      workflow.Future
	cancel workflow.CancelFunc
}

var retraining *activities.Retraining

// reconcile starts the activity the current stage needs, unless it runs.
func (r *retrain) reconcile(ctx workflow.Context) {
	st := &r.st
	if c := st.Status.Current; c != nil && c.Submits {
		switch st.Status.Stage {
		case modelfleet.RetrainWaiting:
			switch {
			case c.Compute == "":
				r.start(ctx, opSubmit, c.Number, "", retraining.SubmitRetraining,
					activities.SubmitRequest{Model: r.in.Model, JobID: c.JobID, Cycle: c.Number, Why: c.Why})
			case c.Compute != modelfleet.ComputeExternal && c.Run != nil:
				if _, done := terminal(c.RunStatus); !done {
					r.start(ctx, opAwait, c.Number, "", retraining.AwaitRun,
						activities.AwaitRunRequest{Ref: *c.Run, Poll: r.in.PollInterval, Window: retrainAwaitWindow})
				}
			}
		case modelfleet.RetrainEvaluating:
			r.start(ctx, opEvaluate, c.Number, "", retraining.EvaluateChallenger,
				activities.EvaluateRequest{Model: r.in.Model, Ref: *c.Run, Margin: *r.in.Margin})
		case modelfleet.RetrainRegistering:
			r.start(ctx, opRegister, c.Number, "", retraining.RegisterChallenger,
				activities.RegisterRequest{Model: r.in.Model, JobID: c.JobID, Cycle: c.Number, Why: c.Why, Ref: *c.Run, Comparison: *c.Evaluation})
		}
	}
	for _, x := range st.Cancels {
		r.start(ctx, opCancel, x.Cycle, x.Ref.ID, retraining.CancelRun, activities.CancelRequest{Model: r.in.Model, Ref: x.Ref})
	}
}

func (r *retrain) start(ctx workflow.Context, kind string, cycle int, key string, activity, arg any) {
	for _, o := range r.ops {
		if o.kind == kind && o.cycle == cycle && o.key == key {
			return
		}
	}
	actx, cancel := workflow.WithCancel(ctx)
	f := workflow.ExecuteActivity(r.activityOptions(actx, kind), activity, arg)
	r.ops = append(r.ops, &op{kind: kind, cycle: cycle, key: key, f: f, cancel: cancel})
}

func (r *retrain) activityOptions(ctx workflow.Context, kind string) workflow.Context {
	// Every activity heartbeats (the long ones through keepAlive): a worker
	// that dies mid-way is noticed within the heartbeat timeout.
	o := workflow.ActivityOptions{HeartbeatTimeout: 4 * activities.HeartbeatEvery,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}}
	switch kind {
	case opSubmit:
		o.StartToCloseTimeout, o.ScheduleToCloseTimeout = 5*time.Minute, 30*time.Minute
	case opAwait:
		// Retried without end on transient errors (the service is down):
		// JobTimeout ends the wait.
		o.StartToCloseTimeout = retrainAwaitWindow + 2*time.Minute
		o.HeartbeatTimeout = max(2*r.in.PollInterval, time.Minute)
		o.RetryPolicy.InitialInterval = 5 * time.Second
	case opEvaluate, opRegister:
		o.StartToCloseTimeout, o.ScheduleToCloseTimeout = 10*time.Minute, time.Hour
	case opCancel:
		o.StartToCloseTimeout, o.ScheduleToCloseTimeout = 5*time.Minute, 30*time.Minute
	}
	return workflow.WithActivityOptions(ctx, o)
}

// addOps adds every op in flight to the loop's selector.
func (r *retrain) addOps(ctx workflow.Context, sel workflow.Selector) {
	for _, o := range r.ops {
		sel.AddFuture(o.f, func(f workflow.Future) {
			r.remove(o)
			r.done(ctx, o, f)
		})
	}
}

func (r *retrain) remove(o *op) {
	for i, x := range r.ops {
		if x == o {
			r.ops = append(r.ops[:i:i], r.ops[i+1:]...)
			return
		}
	}
}

// stopOps cancels the cycle's ops of the given kinds.
func (r *retrain) stopOps(cycle int, kinds ...string) {
	for _, o := range r.ops {
		for _, k := range kinds {
			if o.kind == k && o.cycle == cycle {
				o.cancel()
			}
		}
	}
}

// current returns the current cycle if it is number n and in stage.
func (r *retrain) current(n int, stage string) *RetrainCycle {
	c := r.st.Status.Current
	if c == nil || c.Number != n || r.st.Status.Stage != stage {
		return nil
	}
	return c
}

// done applies an op's result; a result the workflow has moved past (the
// other path saw the job end first, the cycle timed out) is dropped.
func (r *retrain) done(ctx workflow.Context, o *op, f workflow.Future) {
	switch o.kind {
	case opSubmit:
		var sub activities.Submission
		err := f.Get(ctx, &sub)
		c := r.current(o.cycle, modelfleet.RetrainWaiting)
		if c == nil || c.Compute != "" || temporal.IsCanceledError(err) {
			return
		}
		if err != nil {
			r.finish(ctx, ResultFailed, "submitting the job failed: "+rootMessage(err))
			return
		}
		r.submitted(ctx, c, sub)
	case opAwait:
		var js activities.JobStatus
		err := f.Get(ctx, &js)
		c := r.current(o.cycle, modelfleet.RetrainWaiting)
		if c == nil || temporal.IsCanceledError(err) {
			return
		}
		if err != nil {
			r.finish(ctx, ResultFailed, fmt.Sprintf("could not follow run %s: %s", c.RunID, rootMessage(err)))
			return
		}
		c.RunStatus = js.Status
		if js.Terminal {
			r.observeTerminal(ctx, js.Status, "poll", js.Message)
		}
		r.st.Status.UpdatedAt = stamp(ctx)
	case opEvaluate:
		var cmp modelfleet.Comparison
		err := f.Get(ctx, &cmp)
		c := r.current(o.cycle, modelfleet.RetrainEvaluating)
		if c == nil || temporal.IsCanceledError(err) {
			return
		}
		if err != nil {
			r.finish(ctx, ResultFailed, "evaluating the challenger failed: "+rootMessage(err))
			return
		}
		c.Evaluation = &cmp
		if !cmp.Passed {
			r.finish(ctx, ResultRejected, "rejected: "+cmp.Reason)
			return
		}
		r.setStage(ctx, modelfleet.RetrainRegistering, "the challenger won: "+cmp.Reason)
	case opRegister:
		var m modelfleet.Model
		err := f.Get(ctx, &m)
		c := r.current(o.cycle, modelfleet.RetrainRegistering)
		if c == nil || temporal.IsCanceledError(err) {
			return
		}
		if err != nil {
			r.finish(ctx, ResultFailed, "registering the challenger failed: "+rootMessage(err))
			return
		}
		ref := m.ModelRef
		c.Registered = &ref
		r.finish(ctx, ResultRegistered, fmt.Sprintf("registered %s (its release starts now): %s", ref, c.Evaluation.Reason))
	case opCancel:
		err := f.Get(ctx, nil)
		if temporal.IsCanceledError(err) {
			return
		}
		for i, x := range r.st.Cancels {
			if x.Cycle == o.cycle && x.Ref.ID == o.key {
				r.st.Cancels = append(r.st.Cancels[:i:i], r.st.Cancels[i+1:]...)
				break
			}
		}
		if err != nil {
			r.note(o.cycle, fmt.Sprintf("cancelling run %s failed: %s", o.key, rootMessage(err)))
		} else {
			r.note(o.cycle, fmt.Sprintf("run %s cancelled", o.key))
		}
	}
}

// submitted records where the job went. A terminal status of it that
// arrived by signal before the submission returned is acted on now.
func (r *retrain) submitted(ctx workflow.Context, c *RetrainCycle, sub activities.Submission) {
	c.Compute, c.ComputeID = sub.Compute, sub.ComputeID
	if sub.Compute == modelfleet.ComputeExternal {
		return
	}
	ref := sub.Ref
	c.Run, c.RunID = &ref, ref.ID
	r.setStage(ctx, modelfleet.RetrainWaiting, fmt.Sprintf("retraining requested: %s; run %s on %s", c.Why, ref.ID, sub.Compute))
	if _, done := terminal(c.RunStatus); done {
		r.endRun(ctx, c.RunStatus, "")
	}
}

// observeTerminal takes the first terminal status of the cycle's own job,
// from the signal or the poll; the other path then finds the cycle moved on.
func (r *retrain) observeTerminal(ctx workflow.Context, status, from, msg string) {
	c := r.st.Status.Current
	c.RunStatus = status
	if c.StatusFrom == "" {
		c.StatusFrom = from
	}
	if msg != "" {
		c.Message = msg
	}
	if c.Run == nil {
		return // the submission has not returned yet: decided when it does
	}
	r.endRun(ctx, status, "")
}

// endRun moves on from a job that ended: a completed job of ours is
// evaluated; anything else ends the cycle.
func (r *retrain) endRun(ctx workflow.Context, status, note string) {
	c := r.st.Status.Current
	result, _ := terminal(status)
	outcome := fmt.Sprintf("run %s %s", c.RunID, strings.ToLower(status))
	switch {
	case c.Run == nil:
		outcome += ", submitted elsewhere: nothing evaluated"
	case result == ResultCompleted:
		r.st.Deadline = time.Time{}
		r.setStage(ctx, modelfleet.RetrainEvaluating, fmt.Sprintf("run %s completed: evaluating the challenger against the champion", c.RunID))
		return
	case c.Message != "":
		outcome += ": " + c.Message
	}
	if note != "" {
		outcome += " (" + note + ")"
	}
	r.finish(ctx, result, outcome)
}

// timedOut ends a cycle whose job did not end within JobTimeout; a job of
// ours is cancelled.
func (r *retrain) timedOut(ctx workflow.Context) {
	c := r.st.Status.Current
	if !c.Submits || c.Compute == modelfleet.ComputeExternal {
		r.finish(ctx, ResultTimedOut, fmt.Sprintf("no terminal status within %s", r.in.JobTimeout))
		return
	}
	r.stopOps(c.Number, opSubmit, opAwait)
	ref := r.runRef(c)
	r.st.Cancels = append(r.st.Cancels, RunCancel{Cycle: c.Number, Ref: ref})
	r.finish(ctx, ResultTimedOut, fmt.Sprintf("no terminal status within %s: cancelling run %s", r.in.JobTimeout, ref.ID))
}

// runRef is the cycle's run, or, while its submission is in flight, the
// job it submits (CancelRun resolves its runner by policy).
func (r *retrain) runRef(c *RetrainCycle) activities.RunRef {
	if c.Run != nil {
		return *c.Run
	}
	return activities.RunRef{ID: c.JobID, Model: r.in.Model}
}

// cancelled ends a workflow someone cancelled: the job of the cycle in
// flight, and any cancellation still owed, are cancelled first.
func (r *retrain) cancelled(ctx workflow.Context) (RetrainStatus, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	c := r.st.Status.Current
	if c != nil && c.Submits && c.Compute != modelfleet.ComputeExternal && r.st.Status.Stage == modelfleet.RetrainWaiting {
		r.st.Cancels = append(r.st.Cancels, RunCancel{Cycle: c.Number, Ref: r.runRef(c)})
	}
	if c != nil {
		r.finish(dctx, ResultCanceled, "the retraining workflow was cancelled")
	}
	for _, x := range r.st.Cancels {
		err := workflow.ExecuteActivity(r.activityOptions(dctx, opCancel), retraining.CancelRun, activities.CancelRequest{Model: r.in.Model, Ref: x.Ref}).Get(dctx, nil)
		if err != nil {
			r.note(x.Cycle, fmt.Sprintf("cancelling run %s failed: %s", x.Ref.ID, rootMessage(err)))
		} else {
			r.note(x.Cycle, fmt.Sprintf("run %s cancelled", x.Ref.ID))
		}
	}
	r.st.Cancels = nil
	r.setStage(dctx, modelfleet.RetrainClosed, "cancelled")
	return r.st.Status, temporal.NewCanceledError("retraining workflow cancelled")
}

// note appends to the outcome of cycle n, finished or current.
func (r *retrain) note(n int, text string) {
	st := &r.st.Status
	for i := range st.Cycles {
		if st.Cycles[i].Number == n {
			st.Cycles[i].Outcome = joinNote(st.Cycles[i].Outcome, text)
			return
		}
	}
	if st.Current != nil && st.Current.Number == n {
		st.Current.Outcome = joinNote(st.Current.Outcome, text)
	}
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// jobID names a cycle's job: an Azure ML job name (letters, digits, '-',
// '_'), the same on every retry, and unique across the workflow runs that
// reuse the ID retrain/<model> (the first run ID of this chain tells them
// apart; continue-as-new keeps it).
func jobID(ctx workflow.Context, model string, cycle int) string {
	info := workflow.GetInfo(ctx)
	chain := info.FirstRunID
	if chain == "" {
		chain = info.WorkflowExecution.RunID
	}
	var short []byte
	for i := 0; i < len(chain) && len(short) < 12; i++ {
		if c := chain[i]; (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			short = append(short, c)
		}
	}
	name := []byte(model)
	for i, c := range name {
		if !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-') {
			name[i] = '-'
		}
	}
	if len(name) > 200 {
		name = name[:200]
	}
	return fmt.Sprintf("retrain-%s-%s-%d", name, short, cycle)
}
