package modelfleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
)

// ECDSA P-256 keys sign releases as ed25519 keys do; a key on another
// curve is refused, and a signature verifies only with its own key.
func TestECDSAReleaseKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed := mustKey(t)
	tk, err := TrustedKeyOf(ec.Public())
	if err != nil || !strings.HasPrefix(tk.ID, "ecdsa-p256:") {
		t.Fatalf("key %+v, %v", tk, err)
	}
	st := NewReleaseStatement(testDigest, 7, ReleasePredicate{Model: "m", Version: "1", Format: "onnx"})
	env, err := SignStatement(st, []*ecdsa.PrivateKey{ec})
	if err != nil {
		t.Fatal(err)
	}
	v := DesiredVersion{Version: "1", Digest: testDigest, Size: 7, Format: "onnx"}
	if _, err := (&Trust{Keys: []TrustedKey{tk}}).VerifyRelease(env, "m", v); err != nil {
		t.Fatalf("an ECDSA signature by a trusted key is refused: %v", err)
	}
	otk, _ := TrustedKeyOf(other.Public())
	forged := *env
	forged.Signatures = []Signature{{KeyID: otk.ID, Sig: env.Signatures[0].Sig}}
	if _, err := (&Trust{Keys: []TrustedKey{otk}}).VerifyRelease(&forged, "m", v); err == nil {
		t.Fatal("a signature verified with another ECDSA key")
	}
	// An ed25519 key posing under the ECDSA key's ID verifies nothing.
	edk, _ := TrustedKeyOf(ed.Public())
	if _, err := (&Trust{Keys: []TrustedKey{{ID: tk.ID, PublicKey: edk.PublicKey}}}).VerifyRelease(env, "m", v); err == nil {
		t.Fatal("an ECDSA signature verified with an ed25519 key")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := TrustedKeyOf(p384.Public()); err == nil {
		t.Fatal("a P-384 key was accepted")
	}
	if _, err := SignStatement(st, []*ecdsa.PrivateKey{p384}); err == nil {
		t.Fatal("signed with a P-384 key")
	}
}
