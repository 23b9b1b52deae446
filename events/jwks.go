package events

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// jwksCache holds the RSA signing keys of a JSON Web Key Set by key ID. An
// unknown key ID refetches the set (Entra rotates keys), at most once per
// minRefresh; a known key older than maxAge refetches too, falling back to
// the cached key if that fails.
type jwksCache struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time

	mu      sync.Mutex // held while fetching: one fetch at a time
	keys    map[string]*rsa.PublicKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

func (c *jwksCache) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	k, ok := c.keys[kid]
	if ok && now.Sub(c.fetched) < c.maxAge {
		return k, nil
	}
	if c.tried.IsZero() || now.Sub(c.tried) >= c.minRefresh {
		c.tried = now
		keys, err := c.fetch(ctx)
		if err != nil && !ok {
			return nil, fmt.Errorf("signing keys unavailable: %w", err)
		}
		if err == nil {
			c.keys, c.fetched = keys, now
		}
	}
	if k, ok := c.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown signing key %q", clip(kid))
}

// jwk is the part of a JSON Web Key an RS256 verifier needs.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func (c *jwksCache) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: %s answered %s", c.url, resp.Status)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if pub, err := k.rsa(); err == nil {
			keys[k.Kid] = pub
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks: %s holds no RSA signing key", c.url)
	}
	return keys, nil
}

func (k jwk) rsa() (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		return nil, err
	}
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("jwk %q: bad exponent", k.Kid)
	}
	exp := int(new(big.Int).SetBytes(e).Int64())
	// The modulus's bits, not its encoding's bytes: leading zero bytes
	// (which RFC 7518 §6.3.1.1 forbids) would let a tiny modulus pass.
	mod := new(big.Int).SetBytes(n)
	if mod.BitLen() < 2048 || exp < 3 {
		return nil, fmt.Errorf("jwk %q: key too weak", k.Kid)
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}
