package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is the embedded stack's own small OIDC issuer: discovery and
// JWKS served by the gateway, tokens minted for a few dev identities and
// written to the data dir, where the CLI finds them. It stands in for
// Entra ID or Keycloak; the gateway verifies its tokens exactly as theirs
// (go-oidc, discovery, JWKS), so the embedded stack runs with
// authentication on.
type Issuer struct {
	URL      string // the issuer, as tokens' iss
	Audience string
	key      *ecdsa.PrivateKey
	kid      string
}

// OpenIssuer loads (or creates) the issuer's signing key in dir.
func OpenIssuer(dir, issuerURL, audience string) (*Issuer, error) {
	path := filepath.Join(dir, "issuer.key")
	b, err := os.ReadFile(path)
	var k *ecdsa.PrivateKey
	switch {
	case errors.Is(err, os.ErrNotExist):
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("issuer key %s: no PEM block", path)
		}
		pk, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("issuer key %s: %w", path, err)
		}
		var ok bool
		if k, ok = pk.(*ecdsa.PrivateKey); !ok {
			return nil, fmt.Errorf("issuer key %s: not ECDSA", path)
		}
	}
	pub := jose.JSONWebKey{Key: &k.PublicKey}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &Issuer{URL: issuerURL, Audience: audience, key: k, kid: fmt.Sprintf("%x", tp[:8])}, nil
}

// Identity is a dev identity the issuer mints tokens for.
type Identity struct {
	Subject string
	Groups  []string
	Roles   []string // app roles
	Service bool     // a client (client-credentials token), not a user
}

// Mint signs a token for id, valid for ttl.
func (i *Issuer) Mint(id Identity, ttl time.Duration) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", i.kid))
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := map[string]any{
		"iss": i.URL, "aud": i.Audience, "sub": id.Subject,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix(),
	}
	if id.Service {
		claims["azp"], claims["idtyp"] = id.Subject, "app"
	} else {
		claims["preferred_username"] = id.Subject
	}
	if len(id.Groups) > 0 {
		claims["groups"] = id.Groups
	}
	if len(id.Roles) > 0 {
		claims["roles"] = id.Roles
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// KeySet verifies the issuer's tokens in its own process.
func (i *Issuer) KeySet() oidc.KeySet {
	return &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&i.key.PublicKey}}
}

// Handler serves discovery (/.well-known/openid-configuration) and the
// JWKS (/jwks) under the issuer's path, for any OIDC client.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": i.URL, "jwks_uri": i.URL + "/jwks",
			"authorization_endpoint": i.URL + "/authorize", "token_endpoint": i.URL + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &i.key.PublicKey, KeyID: i.kid, Algorithm: "ES256", Use: "sig"}}})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
