package workflows

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// A control statement signed with an ECDSA P-256 key (what a Key Vault
// control key signs with, ES256) passes its gate when the release's input
// trusts that key, beside or instead of the ed25519 key files; a P-256 key
// the release does not trust passes nothing. The workflow's code is the
// same for both: the key's ID names its algorithm.
func TestECDSASignedApprovals(t *testing.T) {
	p256 := func(t *testing.T) (*ecdsa.PrivateKey, modelfleet.TrustedKey) {
		t.Helper()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := modelfleet.TrustedKeyOf(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return k, tk
	}
	signAll := func(t *testing.T, st modelfleet.ControlStatement, keys ...crypto.Signer) modelfleet.Control {
		t.Helper()
		ctl, err := modelfleet.SignControlAll(st, keys)
		if err != nil {
			t.Fatal(err)
		}
		return ctl
	}
	t.Run("vault key alone", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		k, tk := p256(t)
		h.in.ControlKeys = []modelfleet.TrustedKey{tk}
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, signAll(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary"), k))
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded || len(st.Controls) != 1 || !st.Controls[0].Verified || st.Controls[0].By != "alice@plant" {
			t.Fatalf("state %q (%s), controls %+v, err %v", st.State, st.Reason, st.Controls, err)
		}
	})
	t.Run("vault key and a key file, the release knows the file only", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		k, _ := p256(t)
		h.in.ControlKeys = s.trusted // started before the vault key was added
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, signAll(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary"), k, crypto.Signer(s.key)))
		st, err := h.run()
		if err != nil || st.State != modelfleet.StateSucceeded {
			t.Fatalf("state %q (%s), err %v", st.State, st.Reason, err)
		}
	})
	t.Run("untrusted P-256 key is refused", func(t *testing.T) {
		h, s := newHarness(t, gated, sites("c1"), sites("f1")), newSigner(t)
		k, _ := p256(t)
		_, trusted := p256(t)
		h.in.ControlKeys = []modelfleet.TrustedKey{trusted}
		sendAt(h.env, 45*time.Minute, modelfleet.SignalApprove, signAll(t, s.statement(h.env, modelfleet.SignalApprove, releaseID, "canary"), k))
		st, _ := h.run()
		stuckAtGate(t, h, st, "alice@plant", "not signed by a trusted key")
	})
}
