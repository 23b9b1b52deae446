package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	"go.temporal.io/sdk/workflow"
)

// signedControls versions the rules of apply (replay safety: histories
// recorded before them accepted every control as it came, an early approve
// included). Each run decides once, in newRelease.
const signedControls = "signed-controls"

// Bounds of what a release keeps about controls.
const (
	// MaxControlNonces bounds the nonces of unexpired statements a release
	// remembers; a statement past it is refused until one expires.
	MaxControlNonces = 512
	// MaxRefusedControls bounds the refused controls recorded in the
	// status (every one is still logged and in the workflow history).
	MaxRefusedControls = 100
	// maxClaim bounds what a refused control's sender claimed, as recorded.
	maxClaim = 200
)

// controls is the release's view of the signals received so far. A
// coroutine drains the channels; the main flow waits on these fields with
// workflow.Await, so a control takes effect at the next safe point.
type controls struct {
	approved, rejected, paused, aborted, rollback, skipBake bool
	log                                                     []modelfleet.ControlRecord
	// strict: this run applies the signed-controls rules — an approve
	// counts only for the gate open when it arrives, and with keys every
	// control needs a statement one of them signed, for the open gate,
	// used once.
	strict bool
	keys   []modelfleet.TrustedKey
	nonces []SeenNonce
}

// SeenNonce is the nonce of a statement the release verified, kept until
// the statement expires so that it is accepted once.
type SeenNonce struct {
	Nonce   string    `json:"nonce"`
	Expires time.Time `json:"expires"`
}

func (r *release) listen(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	for _, name := range modelfleet.Signals {
		ch := workflow.GetSignalChannel(ctx, name)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var ctl modelfleet.Control
			c.Receive(ctx, &ctl)
			r.apply(ctx, name, ctl)
		})
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel.Select(ctx)
		}
	})
}

func (r *release) apply(ctx workflow.Context, action string, ctl modelfleet.Control) {
	if ctl.By == "" {
		ctl.By = "unknown"
	}
	rec, refused := r.admit(ctx, action, ctl)
	if refused != "" {
		r.refuse(ctx, rec, refused)
		return
	}
	c := &r.ctl
	switch action {
	case modelfleet.SignalApprove:
		// Under the signed-controls rules an approve is one vote at the
		// open gate; the gate passes at its quorum (the policy's
		// approval.count, 1 by default).
		if g := r.status.Gate; c.strict && g != nil {
			g.Approvals = append(g.Approvals, rec.By)
			c.approved = g.Quorum()
		} else {
			c.approved = true
		}
	case modelfleet.SignalReject:
		c.rejected = true
	case modelfleet.SignalPause:
		c.paused = true
	case modelfleet.SignalResume:
		c.paused = false
	case modelfleet.SignalAbort:
		c.aborted = true
	case modelfleet.SignalRollback:
		c.rollback = true
	case modelfleet.SignalSkipBake:
		c.skipBake = true
	}
	c.log = append(c.log, rec)
	r.status.Controls = c.log
	r.status.Paused = c.paused
	workflow.GetLogger(ctx).Info("release control", "action", action, "by", rec.By, "verified", rec.Verified, "reason", rec.Reason)
}

// admit decides whether the release acts on a control: the record to keep
// if it does (who sent it: the statement's subject when verified), and
// otherwise why not.
func (r *release) admit(ctx workflow.Context, action string, ctl modelfleet.Control) (modelfleet.ControlRecord, string) {
	rec := modelfleet.ControlRecord{Action: action, By: ctl.By, Reason: ctl.Reason, At: stamp(ctx), Wave: r.currentWave()}
	c := &r.ctl
	if !c.strict {
		return rec, ""
	}
	gate := r.openGate()
	if len(c.keys) == 0 {
		if action == modelfleet.SignalApprove && gate == "" {
			return rec, "no approval gate is open"
		}
		if action == modelfleet.SignalApprove {
			return rec, r.approvalRefused(rec.By)
		}
		return rec, ""
	}
	now := workflow.Now(ctx)
	st, err := modelfleet.VerifyControl(ctl, c.keys, action, r.id, now)
	if err != nil {
		return rec, modelfleet.ErrorMessage(err)
	}
	// The nonce is spent by any verified statement, acted on or not: a
	// statement refused now (an early approve) is not good later.
	if refused := c.spend(st, now); refused != "" {
		return rec, refused
	}
	switch {
	case action == modelfleet.SignalApprove && gate == "":
		return rec, "no approval gate is open"
	case (action == modelfleet.SignalApprove || action == modelfleet.SignalReject) && st.Gate != gate:
		return rec, "the statement answers gate " + quoteGate(st.Gate) + ", and the gate open is " + quoteGate(gate)
	case st.Role == modelfleet.RoleOwner && (action != modelfleet.SignalAbort || st.Subject != r.status.Owner):
		return rec, "an owner's statement may only abort the release it owns, and " + clip(st.Subject) + " does not own this one"
	case action == modelfleet.SignalApprove:
		if why := r.approvalRefused(st.Subject); why != "" {
			return rec, why
		}
	}
	rec.By, rec.Reason, rec.Verified = st.Subject, st.Reason, true
	return rec, ""
}

// approvalRefused says why the open gate does not take an approve from
// by: the release's owner when the policy forbids self-approval, or a
// second approve from the same identity when approvals must be distinct.
func (r *release) approvalRefused(by string) string {
	g := r.status.Gate
	if g == nil {
		return ""
	}
	if g.SelfApprovalForbidden && r.status.Owner != "" && by == r.status.Owner {
		return clip(by) + " owns this release (registered the version or started it), and the policy forbids self-approval"
	}
	if g.Distinct && slices.Contains(g.Approvals, by) {
		return fmt.Sprintf("%s already approved this gate; the policy needs %d distinct approvers", clip(by), max(g.Needed, 1))
	}
	return ""
}

// spend records st's nonce, forgetting expired ones; it refuses a nonce
// seen before, or one past MaxControlNonces.
func (c *controls) spend(st modelfleet.ControlStatement, now time.Time) string {
	kept := c.nonces[:0]
	for _, n := range c.nonces {
		if n.Nonce == st.Nonce {
			return "the statement was already used (nonce " + clip(st.Nonce) + ")"
		}
		if now.Before(n.Expires) {
			kept = append(kept, n)
		}
	}
	c.nonces = kept
	if len(c.nonces) >= MaxControlNonces {
		return "too many unexpired statements; send it again when older ones expire"
	}
	c.nonces = append(c.nonces, SeenNonce{Nonce: st.Nonce, Expires: st.Expires})
	return ""
}

// refuse records a control the release does not act on, with what its
// sender claimed, and changes nothing else.
func (r *release) refuse(ctx workflow.Context, rec modelfleet.ControlRecord, why string) {
	workflow.GetLogger(ctx).Warn("release control refused", "action", rec.Action, "claimed_by", rec.By, "refused", why)
	n := 0
	for _, l := range r.ctl.log {
		if l.Refused != "" {
			n++
		}
	}
	if n >= MaxRefusedControls {
		return
	}
	rec.By, rec.Reason, rec.Refused, rec.Verified = clip(rec.By), clip(rec.Reason), why, false
	r.ctl.log = append(r.ctl.log, rec)
	r.status.Controls = r.ctl.log
}

// openGate is the approval gate the release waits at ("" if none).
func (r *release) openGate() string {
	if r.status.Gate == nil {
		return ""
	}
	return r.status.Gate.After
}

// closeGate ends the wait at a gate. Under the signed-controls rules an
// approve not spent there is dropped: it answered this gate, no later one.
func (r *release) closeGate() {
	r.status.Gate = nil
	if r.ctl.strict {
		r.ctl.approved = false
	}
}

// stopping reports whether an operator asked the release to stop.
func (c *controls) stopping() bool { return c.aborted || c.rollback || c.rejected }

func quoteGate(g string) string {
	if g == "" {
		return "none"
	}
	return fmt.Sprintf("%q", clip(g))
}

// clip bounds text a sender chose before the release records it.
func clip(s string) string {
	if len(s) <= maxClaim {
		return s
	}
	return strings.ToValidUTF8(s[:maxClaim], "") + "…"
}
