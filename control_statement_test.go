package modelfleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func newKey(t *testing.T) (ed25519.PrivateKey, TrustedKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, TrustedKey{ID: KeyID(pub), PublicKey: pub}
}

func TestVerifyControl(t *testing.T) {
	priv, trusted := newKey(t)
	other, _ := newKey(t)
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	st := ControlStatement{Subject: "ana@plant-a", Role: "approver", Action: SignalApprove, Release: "release/m/2", Gate: "canary",
		IssuedAt: now, Expires: now.Add(10 * time.Minute), Nonce: "n1"}
	ctl, err := SignControl(st, priv)
	if err != nil {
		t.Fatal(err)
	}
	keys := []TrustedKey{trusted}
	got, err := VerifyControl(ctl, keys, SignalApprove, "release/m/2", now.Add(time.Minute))
	if err != nil || got.Subject != "ana@plant-a" || got.Gate != "canary" {
		t.Fatalf("VerifyControl = %+v, %v", got, err)
	}
	// The signal payload survives JSON, as Temporal carries it.
	b, _ := json.Marshal(ctl)
	var back Control
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyControl(back, keys, SignalApprove, "release/m/2", now); err != nil {
		t.Fatalf("after JSON: %v", err)
	}

	forged, _ := SignControl(st, other)
	tampered := ctl
	env := *ctl.Statement
	env.Payload = []byte(strings.Replace(string(env.Payload), "ana@plant-a", "eve@plant-a", 1))
	tampered.Statement = &env
	retyped := ctl
	env2 := *ctl.Statement
	env2.PayloadType = "application/json"
	retyped.Statement = &env2
	for name, tc := range map[string]struct {
		ctl             Control
		action, release string
		at              time.Time
		want            string
	}{
		"unsigned":        {Control{By: "admin"}, SignalApprove, "release/m/2", now, "no signed statement"},
		"other key":       {forged, SignalApprove, "release/m/2", now, "not signed by a trusted key"},
		"tampered":        {tampered, SignalApprove, "release/m/2", now, "not signed by a trusted key"},
		"payload type":    {retyped, SignalApprove, "release/m/2", now, "statement type"},
		"other action":    {ctl, SignalRollback, "release/m/2", now, `for "approve", not "rollback"`},
		"other release":   {ctl, SignalApprove, "release/m/3", now, "for release"},
		"expired":         {ctl, SignalApprove, "release/m/2", now.Add(10 * time.Minute), "expired"},
		"issued too late": {ctl, SignalApprove, "release/m/2", now.Add(-ControlSkew - time.Second), "in the future"},
	} {
		_, err := VerifyControl(tc.ctl, keys, tc.action, tc.release, tc.at)
		if err == nil || !strings.Contains(err.Error(), tc.want) || ErrorCode(err) != EUNAUTHORIZED {
			t.Errorf("%s: error = %v, want one containing %q", name, err, tc.want)
		}
	}
	if _, err := VerifyControl(ctl, nil, SignalApprove, "release/m/2", now); err == nil {
		t.Error("verified with no trusted keys")
	}
}

func TestPAE(t *testing.T) {
	// The DSSE specification's own example.
	if got := string(PAE("http://example.com/HelloWorld", []byte("hello world"))); got != "DSSEv1 29 http://example.com/HelloWorld 11 hello world" {
		t.Errorf("PAE = %q", got)
	}
}

func FuzzVerifyControl(f *testing.F) {
	priv, trusted := newKey(&testing.T{})
	now := time.Now()
	ctl, _ := SignControl(ControlStatement{Subject: "a", Action: SignalApprove, Release: "release/m/1", IssuedAt: now, Expires: now.Add(time.Hour), Nonce: "x"}, priv)
	b, _ := json.Marshal(ctl)
	f.Add(b)
	f.Add([]byte(`{"statement":{"payloadType":"x","payload":"","signatures":[{"keyid":"k","sig":""}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Control
		if json.Unmarshal(data, &c) != nil {
			return
		}
		_, _ = VerifyControl(c, []TrustedKey{trusted}, SignalApprove, "release/m/1", now)
	})
}
