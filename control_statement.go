package modelfleet

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"time"
)

// ControlPayloadType is the DSSE payload type of a signed control.
const ControlPayloadType = "application/vnd.modelfleet.control.v1+json"

// ControlSkew is how far a statement's issue time may lie ahead of the
// verifier's clock (the gateway's and Temporal's clocks differ a little).
const ControlSkew = 2 * time.Minute

// RoleOwner is a statement's Role when the control was allowed because the
// caller owns the release (ReleaseStatus.Owner): an ml-engineer aborting a
// release of their own. A release takes such a statement for nothing else.
const RoleOwner = "owner"

// ControlStatement is what the gateway signs once it has authenticated
// and authorised a release control (an approve, a rollback, ...). The
// workflow verifies the signature with the keys its input carries, so
// whoever can signal the workflow directly (the Temporal UI, `temporal
// workflow signal`) still cannot approve, abort or roll back in someone
// else's name.
type ControlStatement struct {
	Subject string `json:"subject"` // the verified identity that asked
	Role    string `json:"role"`    // the role that allowed it
	Action  string `json:"action"`  // a Signal* name
	Release string `json:"release"` // the release's workflow ID
	// Gate, for approve and reject, is the gate the statement answers
	// (GateStatus.After: a wave name, or ChampionGateName); a statement
	// for another gate passes nothing.
	Gate     string    `json:"gate,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	IssuedAt time.Time `json:"issuedAt"`
	Expires  time.Time `json:"expires"`
	// Nonce makes every statement unique: a workflow accepts each once.
	Nonce string `json:"nonce"`
}

// SignControl signs st and returns the signal payload carrying it.
func SignControl(st ControlStatement, key ed25519.PrivateKey) (Control, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return Control{}, err
	}
	env := SignEnvelope(ControlPayloadType, b, key)
	return Control{By: st.Subject, Reason: st.Reason, Statement: &env}, nil
}

// SignControlAll signs st with every key (ed25519 or ECDSA P-256, a Key
// Vault key among them; SignAll), the first one's signature first, and
// returns the signal payload carrying it.
func SignControlAll[K crypto.Signer](st ControlStatement, keys []K) (Control, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return Control{}, err
	}
	env, err := SignAll(ControlPayloadType, b, keys)
	if err != nil {
		return Control{}, err
	}
	return Control{By: st.Subject, Reason: st.Reason, Statement: env}, nil
}

// VerifyControl checks a control's signed statement against keys: a valid
// signature, the action and release it was issued for, and its validity
// at now. Whether its gate is the one open and its nonce is new is the
// release's to check.
func VerifyControl(ctl Control, keys []TrustedKey, action, release string, now time.Time) (ControlStatement, error) {
	var st ControlStatement
	payload, _, err := ctl.Statement.Verify(ControlPayloadType, keys)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return st, Errorf(EUNAUTHORIZED, "signed statement: %v", err)
	}
	switch {
	case st.Action != action:
		return st, Errorf(EUNAUTHORIZED, "the statement is for %q, not %q", clip(st.Action, 40), action)
	case st.Release != release:
		return st, Errorf(EUNAUTHORIZED, "the statement is for release %q, not %q", clip(st.Release, 200), release)
	case st.Subject == "" || st.Nonce == "":
		return st, Errorf(EUNAUTHORIZED, "the statement names no subject or nonce")
	case now.Add(ControlSkew).Before(st.IssuedAt):
		return st, Errorf(EUNAUTHORIZED, "the statement was issued in the future (%s)", st.IssuedAt.UTC().Format(time.RFC3339))
	case !now.Before(st.Expires):
		return st, Errorf(EUNAUTHORIZED, "the statement expired at %s", st.Expires.UTC().Format(time.RFC3339))
	}
	return st, nil
}
