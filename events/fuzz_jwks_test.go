package events

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"
)

// bodyTransport answers every request with one body, in memory.
type bodyTransport []byte

func (b bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b)), Request: req}, nil
}

func jwkOf(kid string, k *rsa.PublicKey) jwk {
	return jwk{Kty: "RSA", Kid: kid, Use: "sig", N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

// FuzzJWKS reads any JSON Web Key Set the Entra JWKS URL could answer: a
// key it keeps is a usable RS256 verification key (modulus of at least
// 2048 bits, exponent at least 3, a key ID), and writing the keys it kept
// back as a set reads the same keys again.
func FuzzJWKS(f *testing.F) {
	n := new(big.Int).Lsh(big.NewInt(1), 2047)
	n.Add(n, big.NewInt(12345))
	good, _ := json.Marshal(map[string]any{"keys": []jwk{jwkOf("k1", &rsa.PublicKey{N: n, E: 65537})}})
	f.Add(good)
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k","n":"` + base64.RawURLEncoding.EncodeToString(append(make([]byte, 255), 7)) + `","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"AA","y":"AA"},{"kty":"RSA","use":"enc","kid":"x","n":"AA","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := &jwksCache{url: "https://login.example/keys", client: &http.Client{Transport: bodyTransport(body)}, now: time.Now}
		keys, err := c.fetch(context.Background())
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("a set without keys is not an error")
		}
		var set struct {
			Keys []jwk `json:"keys"`
		}
		for kid, k := range keys {
			if kid == "" || k.N.BitLen() < 2048 || k.E < 3 {
				t.Fatalf("kept key %q: %d-bit modulus, exponent %d", kid, k.N.BitLen(), k.E)
			}
			set.Keys = append(set.Keys, jwkOf(kid, k))
		}
		b, _ := json.Marshal(set)
		again, err := (&jwksCache{url: c.url, client: &http.Client{Transport: bodyTransport(b)}, now: time.Now}).fetch(context.Background())
		if err != nil || len(again) != len(keys) {
			t.Fatalf("the kept keys do not read back: %v", err)
		}
		for kid, k := range keys {
			if !k.Equal(again[kid]) {
				t.Fatalf("key %q changed on the way back", kid)
			}
		}
	})
}
