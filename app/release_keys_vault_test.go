package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/keyvault/kvtest"
)

// Release keys in Key Vault (the SDK's fake vault): the gateway gives
// sites the vault key beside its key files and signs the key set with
// both; a worker signing only in the vault makes statements that a site
// which learned the set verifies; the revoked file revokes a vault key.
func TestReleaseKeysInKeyVault(t *testing.T) {
	v := kvtest.New()
	v.AddKey(t, "release", time.Now().Add(time.Hour)) // newer than the key file: moves the serial
	ctx := context.Background()
	vk, err := OpenVaultKeys(ctx, []string{v.KeyURL("release")}, v.Credential(), v.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := OpenReleaseKeys(dir, true) // what a site enrolled before pinned
	if err != nil {
		t.Fatal(err)
	}
	pinned := files.Trust()
	gw, err := OpenReleaseKeys(dir, false, vk...)
	if err != nil {
		t.Fatal(err)
	}
	tr := gw.Trust()
	if len(tr.Keys) != 2 || !strings.HasPrefix(tr.Keys[0].ID, "ecdsa-p256:") {
		t.Fatalf("trust %v, want the vault's ECDSA key first and the file's", tr.Keys)
	}
	learned, ok, err := pinned.Update(gw.KeySet())
	if !ok || err != nil {
		t.Fatalf("a site that pinned the key file does not learn the set with the vault key: %v, %v", ok, err)
	}
	worker, err := OpenReleaseKeys("", false, vk...)
	if err != nil {
		t.Fatal(err)
	}
	st := modelfleet.NewReleaseStatement("sha256:"+strings.Repeat("0", 64), 5, modelfleet.ReleasePredicate{Model: "m", Version: "1", Format: "onnx"})
	env, err := worker.SignRelease(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Signatures) != 1 || env.Signatures[0].KeyID != tr.Keys[0].ID {
		t.Fatalf("worker signatures %v, want the vault key's alone", env.Signatures)
	}
	dv := modelfleet.DesiredVersion{Version: "1", Digest: "sha256:" + strings.Repeat("0", 64), Size: 5, Format: "onnx"}
	if _, err := learned.VerifyRelease(env, "m", dv); err != nil {
		t.Fatalf("the site refuses the vault's statement: %v", err)
	}
	if _, err := pinned.VerifyRelease(env, "m", dv); err == nil {
		t.Fatal("a site that never learned the vault key accepts its statement")
	}
	if len(v.Signed) == 0 {
		t.Fatal("nothing was signed in the vault")
	}

	// Revoke the vault key in the gateway's directory.
	if err := os.WriteFile(filepath.Join(dir, RevokedFile), []byte(tr.Keys[0].ID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw2, err := OpenReleaseKeys(dir, false, vk...)
	if err != nil {
		t.Fatal(err)
	}
	if ks := gw2.Trust().Keys; len(ks) != 1 || ks[0].ID == tr.Keys[0].ID {
		t.Fatalf("after revocation the trust is %v", ks)
	}
	if _, err := OpenReleaseKeys(dir, false, append(vk, vk...)...); err == nil {
		t.Fatal("the same vault key twice is accepted")
	}
	if _, err := OpenReleaseKeys("", false); err == nil {
		t.Fatal("no keys at all is accepted")
	}
	// A new gateway with vault keys creates no key file.
	fresh := t.TempDir()
	if _, err := OpenReleaseKeys(fresh, true, vk...); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(fresh, "*.key")); len(m) != 0 {
		t.Fatalf("key files %v created beside vault keys", m)
	}
}
