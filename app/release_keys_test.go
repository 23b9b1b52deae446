package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Keys rotate: the new key and the old both sign; a revoked key stops
// signing, and the key set the sites learn says it is revoked and is
// signed by a key they trusted before.
func TestReleaseKeysRotateAndRevoke(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenReleaseKeys(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	old := first.Trust()
	if len(old.Keys) != 1 {
		t.Fatalf("%d keys, want one created", len(old.Keys))
	}
	if _, err := RotateReleaseKeys(dir, []string{"ed25519:nosuchkey"}, ""); err == nil {
		t.Fatal("revoking an unknown key succeeded")
	}
	newID, err := RotateReleaseKeys(dir, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	both, err := OpenReleaseKeys(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	st := modelfleet.NewReleaseStatement("sha256:0000000000000000000000000000000000000000000000000000000000000001", 5,
		modelfleet.ReleasePredicate{Model: "m", Version: "1", Format: "onnx", SignedAt: time.Now()})
	env, err := both.SignRelease(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Signatures) != 2 || env.Signatures[0].KeyID != newID {
		t.Fatalf("signatures %v, want the new key's first and the old key's", env.Signatures)
	}
	// Revoke the first key (mtime resolution: make the change later).
	time.Sleep(1100 * time.Millisecond)
	if _, err := RotateReleaseKeys(dir, []string{old.Keys[0].ID}, ""); err != nil {
		t.Fatal(err)
	}
	last, err := OpenReleaseKeys(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	env, _ = last.SignRelease(context.Background(), st)
	for _, s := range env.Signatures {
		if s.KeyID == old.Keys[0].ID {
			t.Fatal("a revoked key still signs")
		}
	}
	next, ok, err := old.Update(last.KeySet())
	if !ok || err != nil {
		t.Fatalf("a site that pinned the first key does not take the new key set: %v", err)
	}
	v := modelfleet.DesiredVersion{Version: "1", Digest: st.Subject[0].Digest["sha256"], Format: "onnx", Size: 5}
	v.Digest = "sha256:" + v.Digest
	if _, err := next.VerifyRelease(env, "m", v); err != nil {
		t.Fatalf("a statement by the current keys is refused: %v", err)
	}
	byOld, _ := first.SignRelease(context.Background(), st)
	if _, err := next.VerifyRelease(byOld, "m", v); err == nil {
		t.Fatal("a statement by the revoked key is trusted after the site learned the revocation")
	}
}

// An ECDSA P-256 key rotates in beside an ed25519 one; both sign, and a
// site that knows only the new key verifies.
func TestReleaseKeysECDSA(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReleaseKeys(dir, true); err != nil {
		t.Fatal(err)
	}
	id, err := RotateReleaseKeys(dir, nil, KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := OpenReleaseKeys(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	st := modelfleet.NewReleaseStatement("sha256:"+strings.Repeat("0", 64), 5, modelfleet.ReleasePredicate{Model: "m", Version: "1", Format: "onnx"})
	env, err := rk.SignRelease(context.Background(), st)
	if err != nil || len(env.Signatures) != 2 || env.Signatures[0].KeyID != id {
		t.Fatalf("signatures %v (%v), want the ECDSA key's first", env, err)
	}
	var only modelfleet.Trust
	for _, k := range rk.Trust().Keys {
		if k.ID == id {
			only.Keys = append(only.Keys, k)
		}
	}
	v := modelfleet.DesiredVersion{Version: "1", Digest: "sha256:" + strings.Repeat("0", 64), Size: 5, Format: "onnx"}
	if _, err := only.VerifyRelease(env, "m", v); err != nil {
		t.Fatalf("a site pinning the ECDSA key alone: %v", err)
	}
	if _, err := RotateReleaseKeys(dir, nil, "rsa"); err == nil {
		t.Fatal("an RSA key was made")
	}
}
