package modelfleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func mustKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func trustOf(keys ...ed25519.PrivateKey) *Trust {
	t := &Trust{}
	for _, k := range keys {
		pub := k.Public().(ed25519.PublicKey)
		t.Keys = append(t.Keys, TrustedKey{ID: KeyID(pub), PublicKey: pub})
	}
	return t
}

const testDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

func signedVersion(tb testing.TB, key ed25519.PrivateKey, model, version, digest string, size int64) DesiredVersion {
	tb.Helper()
	st := NewReleaseStatement(digest, size, ReleasePredicate{Model: model, Version: version, Format: "lightgbm", Features: []string{"a"}, Release: "release/" + model, SignedAt: time.Unix(0, 0).UTC()})
	env, err := SignStatement(st, []ed25519.PrivateKey{key})
	if err != nil {
		tb.Fatal(err)
	}
	return DesiredVersion{Version: version, Digest: digest, Size: size, Format: "lightgbm", Features: []string{"a"}, Weight: 100, Statement: env}
}

func TestVerifyRelease(t *testing.T) {
	key, other := mustKey(t), mustKey(t)
	good := signedVersion(t, key, "m", "2", testDigest, 10)
	trust := trustOf(key)
	if _, err := trust.VerifyRelease(good.Statement, "m", good); err != nil {
		t.Fatalf("a good statement is refused: %v", err)
	}
	revoked := trustOf(key)
	revoked.Revoked = []string{revoked.Keys[0].ID}
	otherDigest := good
	otherDigest.Digest = "sha256:" + strings.Repeat("ab", 32)
	otherSize := good
	otherSize.Size = 11
	otherFormat := good
	otherFormat.Format = "onnx"
	tampered := good
	env := *good.Statement
	env.Payload = []byte(strings.Replace(string(env.Payload), `"version":"2"`, `"version":"3"`, 1))
	tampered.Statement = &env
	for name, c := range map[string]struct {
		trust *Trust
		model string
		v     DesiredVersion
		want  string
	}{
		"no statement":     {trust, "m", DesiredVersion{Version: "2", Digest: testDigest, Format: "lightgbm"}, "no signed release statement"},
		"other digest":     {trust, "m", otherDigest, "is for artifact"},
		"other size":       {trust, "m", otherSize, "bytes"},
		"untrusted key":    {trustOf(other), "m", good, "not signed by a trusted key"},
		"revoked key":      {revoked, "m", good, "not signed by a trusted key"},
		"other model":      {trust, "n", good, "is for m:2"},
		"other version":    {trust, "m", signedVersionAs(good, "3"), "is for m:2"},
		"other format":     {trust, "m", otherFormat, "format"},
		"tampered payload": {trust, "m", tampered, "not signed by a trusted key"},
		"no keys at all":   {&Trust{}, "m", good, "not signed by a trusted key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.trust.VerifyRelease(c.v.Statement, c.model, c.v)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a refusal saying %q", err, c.want)
			}
			if got, want := ErrorCode(err), EUNAUTHORIZED; got != want {
				t.Fatalf("code %q, want %q", got, want)
			}
		})
	}
}

func signedVersionAs(v DesiredVersion, version string) DesiredVersion {
	v.Version = version
	return v
}

func TestTrustUpdate(t *testing.T) {
	old, rotated, rogue := mustKey(t), mustKey(t), mustKey(t)
	trust := trustOf(old)
	next := *trustOf(old, rotated)
	next.Serial = 2
	next.Revoked = []string{trust.Keys[0].ID}
	// Signed by the new key alone: the site does not trust it yet.
	env, _ := SignKeySet(next, []ed25519.PrivateKey{rotated})
	if _, ok, err := trust.Update(env); ok || err == nil {
		t.Fatalf("a key set signed by an unknown key was taken (%v)", err)
	}
	env, _ = SignKeySet(next, []ed25519.PrivateKey{rotated, old})
	got, ok, err := trust.Update(env)
	if !ok || err != nil {
		t.Fatalf("a key set signed by a trusted key was not taken: %v", err)
	}
	v := signedVersion(t, old, "m", "1", testDigest, 1)
	if _, err := got.VerifyRelease(v.Statement, "m", v); err == nil {
		t.Fatal("a statement by the revoked key is still trusted")
	}
	v = signedVersion(t, rotated, "m", "1", testDigest, 1)
	if _, err := got.VerifyRelease(v.Statement, "m", v); err != nil {
		t.Fatalf("the rotated-in key is not trusted: %v", err)
	}
	// The revoked key cannot sign its way back in, nor bring a rogue key.
	back := *trustOf(old, rogue)
	back.Serial = 3
	env, _ = SignKeySet(back, []ed25519.PrivateKey{old})
	if _, ok, _ := got.Update(env); ok {
		t.Fatal("a key set signed by a revoked key was taken")
	}
	// A replayed older set changes nothing.
	env, _ = SignKeySet(Trust{Keys: trustOf(rotated).Keys, Serial: 1}, []ed25519.PrivateKey{rotated})
	if _, ok, err := got.Update(env); ok || err != nil {
		t.Fatalf("an older key set was taken (%v)", err)
	}
}

func FuzzDecodeStatement(f *testing.F) {
	b, _ := json.Marshal(NewReleaseStatement(testDigest, 3, ReleasePredicate{Model: "m", Version: "1", Format: "onnx"}))
	f.Add(b)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`))
	f.Add([]byte(`{}{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeStatement(data)
		if err == nil && len(st.Subject) != 1 {
			t.Fatalf("decoded a statement with %d subjects", len(st.Subject))
		}
	})
}

func FuzzTrustUpdate(f *testing.F) {
	key := mustKey(f)
	trust := trustOf(key)
	env, _ := SignKeySet(Trust{Keys: trust.Keys, Serial: 5}, []ed25519.PrivateKey{key})
	b, _ := json.Marshal(env)
	f.Add(b)
	f.Add([]byte(`{"payloadType":"x","payload":"","signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Envelope
		if json.Unmarshal(data, &e) != nil {
			return
		}
		next, ok, err := trust.Update(&e)
		if ok && (err != nil || next.Serial <= trust.Serial) {
			t.Fatalf("took a key set with serial %d (err %v)", next.Serial, err)
		}
	})
}
