package keyvault

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// FuzzParseKeyURL: a key URL (a flag) either fails or round-trips: its
// String parses to the same key, and names an https vault.
func FuzzParseKeyURL(f *testing.F) {
	for _, s := range []string{
		"https://v.vault.azure.net/keys/release",
		"https://v.vault.azure.net/keys/release/0123456789abcdef0123456789abcdef",
		"https://hsm.managedhsm.azure.net/keys/rel-1/x",
		"https://v.vault.azure.net/keys/a%2Fb", "https://v.vault.azure.net:1/keys/a", "https://[::1]/keys/a",
		"https://v.vault.azure.net/keys/a/b/c", "https://v.vault.azure.net/keys/a#f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseKeyURL(s)
		if err != nil {
			return
		}
		again, err := ParseKeyURL(u.String())
		if err != nil || again != u {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, u, u.String(), again, err)
		}
		if !keyName.MatchString(u.Name) || (u.Version != "" && !keyVersion.MatchString(u.Version)) || u.Vault[:8] != "https://" {
			t.Fatalf("%q → %+v", s, u)
		}
	})
}

// FuzzPublicKey reads any GetKey answer: a key it accepts is on P-256,
// is exactly the answer's coordinates, and its version is the kid's.
func FuzzPublicKey(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand0{})
	x, y := make([]byte, 32), make([]byte, 32)
	k.X.FillBytes(x)
	k.Y.FillBytes(y)
	kid := "https://v.vault.azure.net/keys/release/0123456789abcdef0123456789abcdef"
	f.Add("EC", "P-256", x, y, kid, true)
	f.Add("EC-HSM", "P-256", x, y, kid, false)
	f.Add("RSA", "P-256", x, y, kid, true)
	f.Add("EC", "P-384", x, y, "https://v.vault.azure.net/keys/release", true)
	f.Add("EC", "P-256", y, x, "https://v.vault.azure.net/keys/other/1", true)
	want := KeyURL{Vault: "https://v.vault.azure.net", Name: "release"}
	f.Fuzz(func(t *testing.T, kty, crv string, x, y []byte, kid string, sign bool) {
		jwk := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyType(kty)), Crv: to.Ptr(azkeys.CurveName(crv)), X: x, Y: y, KID: to.Ptr(azkeys.ID(kid))}
		if sign {
			jwk.KeyOps = []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign)}
		}
		pub, ver, err := PublicKey(jwk, want)
		if err != nil {
			return
		}
		if !pub.Curve.IsOnCurve(pub.X, pub.Y) || pub.Curve != elliptic.P256() {
			t.Fatal("accepted a point off P-256")
		}
		gx, gy := make([]byte, 32), make([]byte, 32)
		pub.X.FillBytes(gx)
		pub.Y.FillBytes(gy)
		if !bytes.Equal(gx, x) || !bytes.Equal(gy, y) {
			t.Fatal("the key is not the answer's coordinates")
		}
		got, err := ParseKeyURL(kid)
		if err != nil || got.Name != "release" || got.Version != ver || ver == "" {
			t.Fatalf("kid %q: version %q", kid, ver)
		}
	})
}

// FuzzASN1Signature: any 64 bytes with nonzero halves become DER that
// decodes to the same r and s; anything else is refused.
func FuzzASN1Signature(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 64))
	f.Add(append(make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)...))
	f.Add(make([]byte, 63))
	f.Fuzz(func(t *testing.T, raw []byte) {
		der, err := ASN1Signature(raw)
		if err != nil {
			return
		}
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
			t.Fatalf("DER does not decode: %v", err)
		}
		if rs.R.Cmp(new(big.Int).SetBytes(raw[:32])) != 0 || rs.S.Cmp(new(big.Int).SetBytes(raw[32:])) != 0 {
			t.Fatal("r, s changed")
		}
	})
}

// rand0 is a deterministic reader for the seed key.
type rand0 struct{}

func (rand0) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i + 7)
	}
	return len(p), nil
}
