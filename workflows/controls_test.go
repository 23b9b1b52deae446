package workflows

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/activities"
	"github.com/modelfleet/modelfleet/rollout"
)

const releaseID = "release/bearing-failure/2"

// signer is the gateway in these tests: it signs statements with its key,
// which the releases trust.
type signer struct {
	key     ed25519.PrivateKey
	trusted []modelfleet.TrustedKey
	n       int
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, trusted: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}
}

// statement is what the gateway signs for alice: action on release at
// gate, valid for two hours from the test clock's start, a fresh nonce.
func (s *signer) statement(env *testsuite.TestWorkflowEnvironment, action, release, gate string) modelfleet.ControlStatement {
	s.n++
	return modelfleet.ControlStatement{Subject: "alice@plant", Role: "approver", Action: action, Release: release, Gate: gate,
		Reason: "looks fine", IssuedAt: env.Now(), Expires: env.Now().Add(2 * time.Hour), Nonce: "nonce-" + strconv.Itoa(s.n)}
}

func (s *signer) sign(t *testing.T, st modelfleet.ControlStatement) modelfleet.Control {
	t.Helper()
	ctl, err := modelfleet.SignControl(st, s.key)
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

func sendAt(env *testsuite.TestWorkflowEnvironment, after time.Duration, action string, ctl modelfleet.Control) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(action, ctl) }, after)
}

// gated: the canary's three steps bake 10m each, so its gate opens at
// 30m and times out (abort) at 1h30m.
const gated = twoWaves + "approval: {after: [canary], timeout: 1h}\n"

// stuckAtGate checks a release that no approve passed: aborted at the
// canary gate, the fleet never stepped, and its one control refused.
func stuckAtGate(t *testing.T, h *harness, st modelfleet.ReleaseStatus, by, refused string) {
	t.Helper()
	if st.State != modelfleet.StateAborted || !strings.Contains(st.Reason, `no approval after wave "canary"`) || len(h.steps) != 3 {
		t.Errorf("state %q (%s) after %d steps, want aborted at the canary gate after 3", st.State, st.Reason, len(h.steps))
	}
	if len(st.Controls) == 0 {
		t.Fatalf("no control recorded")
	}
	c := st.Controls[len(st.Controls)-1]
	if c.Action != modelfleet.SignalApprove || c.By != by || c.Verified || !strings.Contains(c.Refused, refused) {
		t.Errorf("control recorded %+v, want an approve claimed by %s refused: %s", c, by, refused)
	}
}

func TestSignedApprovals(t *testing.T) {
	t.Run("valid statement passes its gate", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, s.sign(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary")))
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q (%s), err %v", st.State, st.Reason, err)
		}
		if len(st.Controls) != 1 {
			t.Fatalf("controls = %+v", st.Controls)
		}
		if c := st.Controls[0]; c.By != "alice@plant" || !c.Verified || c.Refused != "" || c.Reason != "looks fine" || c.Wave != "canary" {
			t.Errorf("control recorded %+v, want alice@plant's verified approve", c)
		}
		if last := h.steps[len(h.steps)-1]; last.Wave != "fleet" || last.ApprovedBy != "alice@plant" {
			t.Errorf("fleet step %+v, want approved by alice@plant", last)
		}
	})
	t.Run("unsigned is refused", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, modelfleet.Control{By: "alice@plant", Reason: "trust me"})
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "no signed statement")
	})
	t.Run("signed by another key is refused", func(t *testing.T) {
		h, s, other := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t), newSigner(t)
		h.in.ControlKeys = s.trusted
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, other.sign(t, other.statement(h.env, modelfleet.SignalApprove, releaseID, "canary")))
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "not signed by a trusted key")
	})
	t.Run("for another gate is refused", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, s.sign(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, "fleet")))
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", `the statement answers gate "fleet", and the gate open is "canary"`)
	})
	t.Run("for another release is refused", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, s.sign(t, s.statement(h.env, modelfleet.SignalApprove, "release/bearing-failure/3", "canary")))
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "not \"release/bearing-failure/2\"")
	})
	t.Run("expired is refused", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		stmt := s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary")
		stmt.Expires = h.env.Now().Add(40 * time.Minute)
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, s.sign(t, stmt))
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "the statement expired")
	})
	t.Run("early is refused and spent", func(t *testing.T) {
		// Sent during the canary's first bake, then again at the gate:
		// neither passes it.
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		ctl := s.sign(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary"))
		sendAt(h.env, 5*time.Minute, modelfleet.SignalApprove, ctl)
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, ctl)
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "the statement was already used")
		if len(st.Controls) != 2 || st.Controls[0].Refused != "no approval gate is open" {
			t.Errorf("controls = %+v, want the early approve refused: no gate open", st.Controls)
		}
	})
}

// Without keys, controls need no statement, but an approve still answers
// only the gate open when it arrives.
func TestEarlyApproveWithoutKeys(t *testing.T) {
	h := newHarness(t, gated, sites("c1"), sites("f1"))
	h.signal(5*time.Minute, modelfleet.SignalApprove, "alice")
	st, _ := h.run()
	stuckAtGate(t, h, st, "alice", "no approval gate is open")
}

// A wave named like the champion gate has a gate of the same name: a
// statement that overrode the champion gate cannot pass that one too.
func TestSignedApproveSentTwicePassesOneGate(t *testing.T) {
	h, s := newHarness(t, `
waves:
  - {name: champion, select: {ring: canary}, bake: 10m}
  - {name: fleet}
approval: {after: [champion], timeout: 1h}
`, sites("c1"), sites("f1")), newSigner(t)
	h.in.ControlKeys = s.trusted
	h.env.OnActivity(retraining.CheckChampion, mock.Anything, mock.Anything).Return(loser, nil)
	ctl := s.sign(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, modelfleet.ChampionGateName))
	sendAt(h.env, 5*time.Minute, modelfleet.SignalApprove, ctl)  // the champion gate
	sendAt(h.env, 30*time.Minute, modelfleet.SignalApprove, ctl) // the gate after wave "champion"
	st, _ := h.run()
	if st.Champion == nil || st.Champion.Outcome != modelfleet.GateOverridden || st.Champion.Override == nil || st.Champion.Override.By != "alice@plant" || !st.Champion.Override.Verified {
		t.Fatalf("champion check %+v, want overridden by alice@plant, verified", st.Champion)
	}
	if st.State != modelfleet.StateAborted || len(h.steps) != 1 {
		t.Errorf("state %q (%s) after %d steps, want aborted at the gate after wave champion", st.State, st.Reason, len(h.steps))
	}
	if len(st.Controls) != 2 || !strings.Contains(st.Controls[1].Refused, "already used") {
		t.Errorf("controls = %+v, want the second use refused", st.Controls)
	}
}

// The champion gate's override follows the same rules.
func TestChampionGateOverrideSigned(t *testing.T) {
	s := newSigner(t)
	in := v5
	in.ControlKeys = s.trusted
	id := modelfleet.ReleaseWorkflowID(v5.Model)
	for _, tc := range []struct {
		name    string
		ctl     func(env *testsuite.TestWorkflowEnvironment) modelfleet.Control
		refused string
	}{
		{"unsigned", func(*testsuite.TestWorkflowEnvironment) modelfleet.Control {
			return modelfleet.Control{By: "alice@plant", Reason: "trust me"}
		}, "no signed statement"},
		{"for a wave's gate", func(env *testsuite.TestWorkflowEnvironment) modelfleet.Control {
			return s.sign(t, s.statement(env, modelfleet.SignalApprove, id, "canary"))
		}, `the gate open is "champion"`},
		{"signed", func(env *testsuite.TestWorkflowEnvironment) modelfleet.Control {
			return s.sign(t, s.statement(env, modelfleet.SignalApprove, id, modelfleet.ChampionGateName))
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newGateEnv(t, loser)
			sendAt(env, time.Hour, modelfleet.SignalApprove, tc.ctl(env))
			env.ExecuteWorkflow("gate", in)
			res, err := gateRun(t, env)
			if tc.refused != "" {
				var ae *temporal.ApplicationError
				if !errors.As(err, &ae) || ae.Type() != "ChampionGate" {
					t.Fatalf("error = %v, want the gate to fail for want of an override", err)
				}
				return
			}
			if err != nil || !res.Passed || res.Check.Override == nil || res.Check.Override.By != "alice@plant" || !res.Check.Override.Verified {
				t.Fatalf("gate = %+v / %+v, %v; want overridden by alice@plant, verified", res.Status, res.Check, err)
			}
		})
	}
}

func TestWorkloadReleaseSignedApprovals(t *testing.T) {
	const policy = `
waves:
  - {name: canary, select: {ring: canary}, bake: 10m}
  - {name: fleet}
approval: {after: [canary], timeout: 1h, onTimeout: abort}
`
	t.Run("unsigned is refused", func(t *testing.T) {
		h, s := newWorkloadHarness(t, policy, sites("c1"), sites("f1")), newSigner(t)
		sendAt(h.env, 20*time.Minute, modelfleet.SignalApprove, modelfleet.Control{By: "ops"})
		st, _ := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2, ControlKeys: s.trusted})
		if st.State != modelfleet.StateAborted || len(h.steps) != 1 || len(st.Controls) != 1 || !strings.Contains(st.Controls[0].Refused, "no signed statement") {
			t.Errorf("state %q after %d steps, controls %+v: want aborted at the gate, the approve refused", st.State, len(h.steps), st.Controls)
		}
	})
	t.Run("signed passes", func(t *testing.T) {
		h, s := newWorkloadHarness(t, policy, sites("c1"), sites("f1")), newSigner(t)
		sendAt(h.env, 20*time.Minute, modelfleet.SignalApprove, s.sign(t, s.statement(h.env, modelfleet.SignalApprove, line2ID, "canary")))
		st, err := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2, ControlKeys: s.trusted})
		if err != nil || st.State != modelfleet.StateSucceeded || len(h.steps) != 2 || h.steps[1].ApprovedBy != "alice@plant" {
			t.Errorf("state %q (%s), err %v, steps %+v: want the fleet approved by alice@plant", st.State, st.Reason, err, h.steps)
		}
	})
	t.Run("early without keys", func(t *testing.T) {
		h := newWorkloadHarness(t, policy, sites("c1"), sites("f1"))
		sendAt(h.env, 5*time.Minute, modelfleet.SignalApprove, modelfleet.Control{By: "ops"})
		st, _ := h.run(modelfleet.WorkloadReleaseInput{Model: "bearing-failure", Workload: line2})
		if st.State != modelfleet.StateAborted || len(h.steps) != 1 || len(st.Controls) != 1 || st.Controls[0].Refused != "no approval gate is open" {
			t.Errorf("state %q after %d steps, controls %+v: want aborted at the gate, the early approve refused", st.State, len(h.steps), st.Controls)
		}
	})
}

// Other controls need a statement too, and one statement acts once: a
// replayed pause does not pause the release again.
func TestSignedControlsActOnce(t *testing.T) {
	h, s := newHarness(t, twoWaves, sites("c1"), sites("f1")), newSigner(t)
	h.in.ControlKeys = s.trusted
	pause := s.sign(t, s.statement(h.env, modelfleet.SignalPause, releaseID, ""))
	sendAt(h.env, 5*time.Minute, modelfleet.SignalPause, pause)
	sendAt(h.env, 6*time.Minute, modelfleet.SignalResume, s.sign(t, s.statement(h.env, modelfleet.SignalResume, releaseID, "")))
	sendAt(h.env, 7*time.Minute, modelfleet.SignalPause, pause)
	sendAt(h.env, 8*time.Minute, modelfleet.SignalAbort, modelfleet.Control{By: "mallory"})
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded || st.Paused {
		t.Fatalf("state %q (%s) paused %v, err %v: want succeeded", st.State, st.Reason, st.Paused, err)
	}
	var got []string
	for _, c := range st.Controls {
		got = append(got, c.Action+":"+strconv.FormatBool(c.Refused == ""))
	}
	if want := "pause:true resume:true pause:false abort:false"; strings.Join(got, " ") != want {
		t.Errorf("controls (action:accepted) = %s, want %s", strings.Join(got, " "), want)
	}
}

// The nonces of a run's statements go with its checkpoint into the next
// run, which refuses them.
func TestNoncesSurviveContinueAsNew(t *testing.T) {
	p, err := rollout.Parse([]byte(gated))
	if err != nil {
		t.Fatal(err)
	}
	h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
	st := s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary")
	c := Checkpoint{
		Status: modelfleet.ReleaseStatus{Model: ref, State: modelfleet.StateDeploying, Waves: []modelfleet.WaveStatus{
			{Name: "canary", Sites: 1, Counts: map[string]int{modelfleet.SitePending: 1}},
			{Name: "fleet", Sites: 1, Counts: map[string]int{modelfleet.SitePending: 1}}},
			Sites: []modelfleet.SiteStatus{{Site: "c1", Wave: "canary", State: modelfleet.SitePending}, {Site: "f1", Wave: "fleet", State: modelfleet.SitePending}}},
		Plan:      activities.RolloutPlan{Policy: p, Waves: [][]activities.PlannedSite{sites("c1"), sites("f1")}},
		Wave:      0,
		Remaining: sites("c1"),
		Touched:   [][]string{nil, nil},
		Controls:  ControlState{Nonces: []SeenNonce{{Nonce: st.Nonce, Expires: st.Expires}}},
	}
	resume, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h.in.ControlKeys, h.in.Resume = s.trusted, resume
	sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, s.sign(t, st))
	res, _ := h.run()
	stuckAtGate(t, h, res, "alice@plant", "the statement was already used")
}

// spend forgets expired nonces and holds at most MaxControlNonces.
func TestNonceBound(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c controls
	for i := range MaxControlNonces {
		if why := c.spend(modelfleet.ControlStatement{Nonce: strconv.Itoa(i), Expires: now.Add(time.Minute)}, now); why != "" {
			t.Fatalf("nonce %d: %s", i, why)
		}
	}
	if why := c.spend(modelfleet.ControlStatement{Nonce: "one too many", Expires: now.Add(time.Hour)}, now); !strings.Contains(why, "too many") {
		t.Errorf("past the bound: %q, want refused", why)
	}
	later := now.Add(2 * time.Minute)
	if why := c.spend(modelfleet.ControlStatement{Nonce: "later", Expires: later.Add(time.Minute)}, later); why != "" || len(c.nonces) != 1 {
		t.Errorf("after the others expired: %q, %d kept; want accepted, 1 kept", why, len(c.nonces))
	}
	if why := c.spend(modelfleet.ControlStatement{Nonce: "later", Expires: later.Add(time.Minute)}, later); !strings.Contains(why, "already used") {
		t.Errorf("reused: %q", why)
	}
}

// statementBy is s.statement sent by another identity in another role.
func (s *signer) statementBy(env *testsuite.TestWorkflowEnvironment, subject, role, action, release, gate string) modelfleet.ControlStatement {
	st := s.statement(env, action, release, gate)
	st.Subject, st.Role = subject, role
	return st
}

// A policy may need several approvals from distinct identities, and may
// forbid the release's owner to approve it.
func TestApprovalQuorum(t *testing.T) {
	const quorum = twoWaves + "approval: {after: [canary], timeout: 1h, count: 2, distinct: true, forbidSelfApproval: true}\n"
	approve := func(h *harness, s *signer, at time.Duration, who string) {
		sendAt(h.env, at, modelfleet.SignalApprove, s.sign(h.t, s.statementBy(h.env, who, "approver", modelfleet.SignalApprove, releaseID, "canary")))
	}
	accepted := func(st modelfleet.ReleaseStatus) string {
		var got []string
		for _, c := range st.Controls {
			if c.Refused == "" {
				got = append(got, c.By)
			} else {
				got = append(got, "refused:"+c.By)
			}
		}
		return strings.Join(got, " ")
	}
	t.Run("two distinct approvers pass", func(t *testing.T) {
		h, s := newHarness(t, quorum, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		approve(h, s, 35*time.Minute, "alice@plant")
		approve(h, s, 40*time.Minute, "bob@plant")
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q (%s), err %v; want succeeded", st.State, st.Reason, err)
		}
		// The fleet stepped only after the second approve.
		if last := h.stepAt[len(h.stepAt)-1].Sub(h.t0); last < 40*time.Minute {
			t.Errorf("the fleet stepped at %v, before the second approve at 40m", last)
		}
		if got := accepted(st); got != "alice@plant bob@plant" {
			t.Errorf("controls = %s", got)
		}
	})
	t.Run("one approver twice does not", func(t *testing.T) {
		h, s := newHarness(t, quorum, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		approve(h, s, 35*time.Minute, "alice@plant")
		approve(h, s, 40*time.Minute, "alice@plant")
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "already approved this gate; the policy needs 2 distinct approvers")
	})
	t.Run("the owner's approve does not count", func(t *testing.T) {
		h, s := newHarness(t, quorum, sites("c1"), sites("f1")), newSigner(t)
		h.in.ControlKeys = s.trusted
		h.report.Model.Properties = map[string]string{modelfleet.PropRegisteredBy: "bob@plant"}
		approve(h, s, 35*time.Minute, "alice@plant")
		approve(h, s, 40*time.Minute, "bob@plant")
		st, _ := h.run()
		stuckAtGate(t, h, st, "bob@plant", "bob@plant owns this release")
		if st.Owner != "bob@plant" {
			t.Errorf("owner = %q, want bob@plant (from the registry's record)", st.Owner)
		}
	})
	t.Run("without keys the same rules", func(t *testing.T) {
		h := newHarness(t, quorum, sites("c1"), sites("f1"))
		h.signal(35*time.Minute, modelfleet.SignalApprove, "alice")
		h.signal(40*time.Minute, modelfleet.SignalApprove, "alice")
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice", "already approved")
	})
}

// An owner's statement aborts the release it owns, and nothing else.
func TestOwnerMayOnlyAbort(t *testing.T) {
	for _, tc := range []struct {
		name, subject, action string
		want                  string
	}{
		{"owner aborts", "bob@plant", modelfleet.SignalAbort, modelfleet.StateAborted},
		{"another's abort refused", "eve@plant", modelfleet.SignalAbort, modelfleet.StateSucceeded},
		{"owner's rollback refused", "bob@plant", modelfleet.SignalRollback, modelfleet.StateSucceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, s := newHarness(t, twoWaves, sites("c1"), sites("f1")), newSigner(t)
			h.in.ControlKeys = s.trusted
			h.report.Model.Properties = map[string]string{modelfleet.PropRegisteredBy: "bob@plant"}
			sendAt(h.env, 5*time.Minute, tc.action, s.sign(t, s.statementBy(h.env, tc.subject, modelfleet.RoleOwner, tc.action, releaseID, "")))
			st, _ := h.run()
			if st.State != tc.want {
				t.Errorf("state %q (%s), want %s; controls %+v", st.State, st.Reason, tc.want, st.Controls)
			}
		})
	}
}
