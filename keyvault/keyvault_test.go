package keyvault_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/keyvault"
	"github.com/modelfleet/modelfleet/keyvault/kvtest"
)

const digest = "sha256:00000000000000000000000000000000000000000000000000000000000000aa"

func open(t *testing.T, v *kvtest.Vault, url string) *keyvault.Key {
	t.Helper()
	k, err := keyvault.Open(context.Background(), url, v.Credential(), v.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func statement() modelfleet.Statement {
	return modelfleet.NewReleaseStatement(digest, 42, modelfleet.ReleasePredicate{
		Model: "m", Version: "2", Format: "lightgbm", Features: []string{"a"}, Release: "release/m/2", SignedAt: time.Unix(0, 0).UTC(),
	})
}

func desired() modelfleet.DesiredVersion {
	return modelfleet.DesiredVersion{Version: "2", Digest: digest, Size: 42, Format: "lightgbm", Features: []string{"a"}, Weight: 100}
}

func trustOf(t *testing.T, pubs ...crypto.PublicKey) *modelfleet.Trust {
	t.Helper()
	tr := &modelfleet.Trust{}
	for _, p := range pubs {
		tk, err := modelfleet.TrustedKeyOf(p)
		if err != nil {
			t.Fatal(err)
		}
		tr.Keys = append(tr.Keys, tk)
	}
	return tr
}

// A statement signed in the vault is a DSSE envelope the sites' verifier
// accepts under the key's public half, known by the ecdsa-p256 ID a key
// file of the same key would have; another key's trust refuses it.
func TestVaultSignsAStatementSitesVerify(t *testing.T) {
	v := kvtest.New()
	priv, ver := v.AddKey(t, "release", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	k := open(t, v, v.KeyURL("release"))
	if got, want := k.ID(), kvtest.URL+"/keys/release/"+ver; got != want {
		t.Errorf("ID = %s, want %s (the version GetKey answered)", got, want)
	}
	if !k.Public().(*ecdsa.PublicKey).Equal(&priv.PublicKey) {
		t.Fatal("the public key is not the vault's")
	}
	env, err := modelfleet.SignStatement(statement(), []crypto.Signer{k})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := modelfleet.TrustedKeyOf(&priv.PublicKey)
	if !strings.HasPrefix(want.ID, "ecdsa-p256:") || env.Signatures[0].KeyID != want.ID {
		t.Fatalf("signature key ID %q, want %q", env.Signatures[0].KeyID, want.ID)
	}
	dv := desired()
	dv.Statement = env
	if _, err := trustOf(t, &priv.PublicKey).VerifyRelease(env, "m", dv); err != nil {
		t.Fatalf("the verifier refuses the vault's statement: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := trustOf(t, &other.PublicKey).VerifyRelease(env, "m", dv); err == nil {
		t.Fatal("a trust without the vault's key accepts its statement")
	}
	if got := v.Signed; len(got) != 1 || got[0] != "release/"+ver {
		t.Errorf("Sign calls = %v, want one of release/%s", got, ver)
	}
	if v.Unauthenticated == 0 {
		t.Error("the client never met the authentication challenge: the test does not exercise Key Vault's auth")
	}
	if !k.Changed().Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("Changed = %v", k.Changed())
	}
}

// A key opened without a version stays on the version it opened: a new
// version created in the vault (a rotation there) does not change the key
// that signs until the process opens the key again, so the public key the
// gateway gave sites and the signing key never differ.
func TestVaultKeyPinsItsVersion(t *testing.T) {
	v := kvtest.New()
	first, ver1 := v.AddKey(t, "release", time.Unix(1, 0))
	k := open(t, v, v.KeyURL("release"))
	_, ver2 := v.AddKey(t, "release", time.Unix(2, 0))
	env, err := modelfleet.SignStatement(statement(), []crypto.Signer{k})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Signed; len(got) != 1 || got[0] != "release/"+ver1 {
		t.Fatalf("Sign calls = %v, want release/%s (not %s)", got, ver1, ver2)
	}
	dv := desired()
	if _, err := trustOf(t, &first.PublicKey).VerifyRelease(env, "m", dv); err != nil {
		t.Fatal(err)
	}
	// An explicit version opens that version.
	k1 := open(t, v, v.KeyURL("release")+"/"+ver1)
	if k1.ID() != k.ID() {
		t.Errorf("versioned ID %s, want %s", k1.ID(), k.ID())
	}
}

// Several vault keys sign together (a rotation): each one's trust alone
// verifies the envelope.
func TestVaultKeysRotate(t *testing.T) {
	v := kvtest.New()
	a, _ := v.AddKey(t, "release-a", time.Unix(1, 0))
	b, _ := v.AddKey(t, "release-b", time.Unix(2, 0))
	ka, kb := open(t, v, v.KeyURL("release-b")), open(t, v, v.KeyURL("release-a"))
	env, err := modelfleet.SignStatement(statement(), []crypto.Signer{ka, kb})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Signatures) != 2 {
		t.Fatalf("%d signatures, want 2", len(env.Signatures))
	}
	for _, pub := range []*ecdsa.PublicKey{&a.PublicKey, &b.PublicKey} {
		if _, err := trustOf(t, pub).VerifyRelease(env, "m", desired()); err != nil {
			t.Errorf("one key's trust: %v", err)
		}
	}
}

// A vault that answers a signature by another key is an error, never an
// envelope a site would refuse later.
func TestVaultForgedSignatureIsAnError(t *testing.T) {
	v := kvtest.New()
	v.AddKey(t, "release", time.Unix(1, 0))
	k := open(t, v, v.KeyURL("release"))
	v.Forge, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := modelfleet.SignStatement(statement(), []crypto.Signer{k}); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("err = %v, want a signature that does not verify", err)
	}
}

func TestVaultSignsOnlySHA256(t *testing.T) {
	v := kvtest.New()
	v.AddKey(t, "release", time.Unix(1, 0))
	k := open(t, v, v.KeyURL("release"))
	h := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, h[:], crypto.SHA512); err == nil {
		t.Error("signs with SHA-512 options")
	}
	if _, err := k.Sign(rand.Reader, h[:20], crypto.SHA256); err == nil {
		t.Error("signs a 20-byte digest")
	}
	sig, err := k.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), h[:], sig) {
		t.Fatalf("Sign = %x, %v: want an ASN.1 signature that verifies", sig, err)
	}
}

// Keys a release cannot be signed with are refused when opened, naming why.
func TestVaultRefusesUnfitKeys(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer func(*azkeys.KeyBundle)
		want   string
	}{
		{"rsa", func(b *azkeys.KeyBundle) { b.Key.Kty = to.Ptr(azkeys.KeyTypeRSA) }, "only EC P-256"},
		{"p-384", func(b *azkeys.KeyBundle) { b.Key.Crv = to.Ptr(azkeys.CurveNameP384) }, "only P-256"},
		{"no sign", func(b *azkeys.KeyBundle) {
			b.Key.KeyOps = []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationVerify)}
		}, `does not permit "sign"`},
		{"disabled", func(b *azkeys.KeyBundle) { b.Attributes.Enabled = to.Ptr(false) }, "disabled"},
		{"off curve", func(b *azkeys.KeyBundle) { b.Key.Y[31] ^= 1 }, "key vault key"},
		{"another key", func(b *azkeys.KeyBundle) {
			b.Key.KID = to.Ptr(azkeys.ID(kvtest.URL + "/keys/other/00000000000000000000000000000001"))
		}, "the answer is for"},
		{"no version", func(b *azkeys.KeyBundle) { b.Key.KID = to.Ptr(azkeys.ID(kvtest.URL + "/keys/release")) }, "the answer is for"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := kvtest.New()
			v.AddKey(t, "release", time.Unix(1, 0))
			v.Answer = tt.answer
			_, err := keyvault.Open(context.Background(), v.KeyURL("release"), v.Credential(), v.ClientOptions())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	v := kvtest.New()
	if _, err := keyvault.Open(context.Background(), v.KeyURL("missing"), v.Credential(), v.ClientOptions()); err == nil || !strings.Contains(err.Error(), "KeyNotFound") {
		t.Fatalf("a missing key: err = %v, want KeyNotFound", err)
	}
}

func TestParseKeyURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://v.vault.azure.net/keys/release":                                  "https://v.vault.azure.net/keys/release",
		"https://v.vault.azure.net/keys/release/0123456789abcdef0123456789abcdef": "https://v.vault.azure.net/keys/release/0123456789abcdef0123456789abcdef",
		"https://hsm.managedhsm.azure.net/keys/rel-1":                             "https://hsm.managedhsm.azure.net/keys/rel-1",
	} {
		u, err := keyvault.ParseKeyURL(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseKeyURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, in := range []string{
		"http://v.vault.azure.net/keys/release", "https://v.vault.azure.net/secrets/release",
		"https://v.vault.azure.net/keys/", "https://v.vault.azure.net/keys/a_b", "https://v.vault.azure.net/keys/a/b/c",
		"https://v.vault.azure.net:8443/keys/a", "https://u@v.vault.azure.net/keys/a", "https://v.vault.azure.net/keys/a?x=1",
		"https://localhost/keys/a", "v.vault.azure.net/keys/a", "https://v.vault.azure.net/keys/" + strings.Repeat("a", 128),
	} {
		if u, err := keyvault.ParseKeyURL(in); err == nil {
			t.Errorf("ParseKeyURL(%q) = %v, want an error", in, u)
		}
	}
}
