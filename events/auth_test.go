package events

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/modelfleet/modelfleet"
)

const (
	key1 = "0123456789abcdef-old"
	key2 = "fedcba9876543210-new"
)

// authed wraps a recording dispatcher's webhook in Authenticate.
func authed(t *testing.T, opts AuthOptions) (http.Handler, *fakeDispatcher) {
	t.Helper()
	d := &fakeDispatcher{}
	opts.Logger = quietLogger()
	h, err := Authenticate(NewHandler(d, HandlerOptions{Logger: quietLogger()}), opts)
	if err != nil {
		t.Fatal(err)
	}
	return h, d
}

func send(h http.Handler, target string, header map[string]string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	r.Header.Set("Content-Type", ctJSON)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantUnauthorized(t *testing.T, w *httptest.ResponseRecorder, d *fakeDispatcher) {
	t.Helper()
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401 (%s)", w.Code, w.Body)
	}
	if w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no WWW-Authenticate header")
	}
	if got := decodeBody(t, w)["error"]; got != modelfleet.EUNAUTHORIZED {
		t.Errorf("error = %v, want %q", got, modelfleet.EUNAUTHORIZED)
	}
	if ids := d.ids(); len(ids) != 0 {
		t.Errorf("dispatched %v, want nothing", ids)
	}
}

func TestSharedKey(t *testing.T) {
	body := load(t, "eventgrid_model_registered.json")
	ok := []struct {
		name, target string
		header       map[string]string
	}{
		{"query", "/api/events?code=" + key1, nil},
		{"rotated key", "/api/events?code=" + key2, nil},
		{"header", "/api/events", map[string]string{DefaultKeyHeader: key2}},
		{"a wrong header beside a right query", "/api/events?code=" + key1, map[string]string{DefaultKeyHeader: "nope"}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h, err := Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = r.URL.RawQuery
				w.WriteHeader(http.StatusOK)
			}), AuthOptions{Keys: []string{key1, key2}, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if w := send(h, tt.target, tt.header, body); w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200 (%s)", w.Code, w.Body)
			}
			if strings.Contains(seen, "code") {
				t.Errorf("the key reached the handler: %q", seen)
			}
		})
	}
	bad := []struct {
		name, target string
		header       map[string]string
	}{
		{"missing", "/api/events", nil},
		{"wrong", "/api/events?code=0123456789abcdef-olx", nil},
		{"prefix of a key", "/api/events?code=0123456789abcdef", nil},
		{"wrong header", "/api/events", map[string]string{DefaultKeyHeader: key1 + "x"}},
		{"another parameter", "/api/events?key=" + key1, nil},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			h, d := authed(t, AuthOptions{Keys: []string{key1, key2}})
			wantUnauthorized(t, send(h, tt.target, tt.header, body), d)
		})
	}
	t.Run("custom parameter", func(t *testing.T) {
		h, d := authed(t, AuthOptions{Keys: []string{key1}, QueryParam: "key"})
		if w := send(h, "/api/events?key="+key1, nil, body); w.Code != http.StatusOK {
			t.Errorf("status = %d, want 200 (%s)", w.Code, w.Body)
		}
		if got := d.ids(); len(got) != 1 {
			t.Errorf("dispatched %v, want one", got)
		}
	})
}

// Event Grid's handshakes carry the key in the endpoint URL like every
// delivery; without it they are refused like any request.
func TestHandshakesAuthenticate(t *testing.T) {
	h, d := authed(t, AuthOptions{Keys: []string{key1}})
	validation := load(t, "subscription_validation.json")
	if w := send(h, "/api/events?code="+key1, nil, validation); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "validationResponse") {
		t.Errorf("validation with the key = %d %s, want 200 with the code", w.Code, w.Body)
	}
	wantUnauthorized(t, send(h, "/api/events", nil, validation), d)

	r := httptest.NewRequest(http.MethodOptions, "/api/events?code="+key1, nil)
	r.Header.Set("WebHook-Request-Origin", "eventgrid.azure.net")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Header().Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" {
		t.Errorf("OPTIONS with the key = %d %v", w.Code, w.Header())
	}
	r = httptest.NewRequest(http.MethodOptions, "/api/events", nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("OPTIONS without the key = %d, want 401", w.Code)
	}
}

func TestAuthenticateConfig(t *testing.T) {
	for name, opts := range map[string]AuthOptions{
		"nothing":        {},
		"short key":      {Keys: []string{"short"}},
		"entra, no jwks": {Entra: &EntraOptions{Issuers: []string{"i"}, Audiences: []string{"a"}}},
	} {
		if _, err := Authenticate(http.NotFoundHandler(), opts); err == nil {
			t.Errorf("%s: Authenticate = nil error", name)
		}
	}
}

// idp is a local identity provider: RSA keys made in the test, a JWKS
// endpoint counting its fetches.
type idp struct {
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	fetches atomic.Int32
	srv     *httptest.Server
}

func newIDP(t *testing.T, kids ...string) *idp {
	p := &idp{keys: map[string]*rsa.PrivateKey{}}
	for _, kid := range kids {
		p.add(t, kid)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range p.keys {
			set.Keys = append(set.Keys, map[string]string{
				"kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256",
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
			})
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) add(t *testing.T, kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.keys[kid] = k
	p.mu.Unlock()
}

const (
	issuer   = "https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa/v2.0"
	audience = "api://modelfleet-gateway"
)

func (p *idp) token(t *testing.T, kid string, edit func(*jwt.RegisteredClaims)) string {
	now := time.Now()
	c := jwt.RegisteredClaims{
		Issuer: issuer, Audience: jwt.ClaimStrings{audience}, Subject: "eventgrid",
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}
	if edit != nil {
		edit(&c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	p.mu.Lock()
	k := p.keys[kid]
	p.mu.Unlock()
	if k == nil { // a key the IdP never published
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *idp) entra() *EntraOptions {
	return &EntraOptions{JWKSURL: p.srv.URL, Issuers: []string{issuer, "https://sts.windows.net/x/"}, Audiences: []string{audience}, MinRefresh: time.Hour}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestEntraToken(t *testing.T) {
	p := newIDP(t, "k1")
	body := load(t, "eventgrid_model_registered.json")
	h, d := authed(t, AuthOptions{Entra: p.entra()})

	if w := send(h, "/api/events", bearer(p.token(t, "k1", nil)), body); w.Code != http.StatusOK {
		t.Fatalf("valid token: status = %d (%s)", w.Code, w.Body)
	}
	if w := send(h, "/api/events", bearer(p.token(t, "k1", func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-30 * time.Second))
	})), body); w.Code != http.StatusOK {
		t.Errorf("expired within the leeway: status = %d (%s)", w.Code, w.Body)
	}
	if got := len(d.ids()); got != 2 {
		t.Fatalf("dispatched %d, want 2", got)
	}

	hmac := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: issuer, Audience: jwt.ClaimStrings{audience},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))})
	hmac.Header["kid"] = "k1"
	hs, _ := hmac.SignedString([]byte("guessable"))
	bad := map[string]string{
		"expired": p.token(t, "k1", func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-5 * time.Minute)) }),
		"no exp":  p.token(t, "k1", func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }),
		"not yet": p.token(t, "k1", func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(5 * time.Minute)) }),
		"audience": p.token(t, "k1", func(c *jwt.RegisteredClaims) {
			c.Audience = jwt.ClaimStrings{"api://other"}
		}),
		"issuer":         p.token(t, "k1", func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example/" }),
		"unknown key":    p.token(t, "k9", nil),
		"hs256":          hs,
		"garbage":        "not.a.token",
		"tampered claim": tamper(p.token(t, "k1", nil)),
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			h, d := authed(t, AuthOptions{Entra: p.entra()})
			wantUnauthorized(t, send(h, "/api/events", bearer(tok), body), d)
		})
	}
	t.Run("no token", func(t *testing.T) {
		wantUnauthorized(t, send(h, "/api/events", nil, body), &fakeDispatcher{})
	})
	t.Run("key and token both required", func(t *testing.T) {
		h, d := authed(t, AuthOptions{Keys: []string{key1}, Entra: p.entra()})
		wantUnauthorized(t, send(h, "/api/events?code="+key1, nil, body), d)
		wantUnauthorized(t, send(h, "/api/events", bearer(p.token(t, "k1", nil)), body), d)
		if w := send(h, "/api/events?code="+key1, bearer(p.token(t, "k1", nil)), body); w.Code != http.StatusOK {
			t.Errorf("both: status = %d (%s)", w.Code, w.Body)
		}
	})
}

// tamper changes the payload of a signed token, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), "eventgrid", "attacker", 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

// A rotated key is learnt by refetching on its unknown key ID; made-up key
// IDs cannot make the gateway fetch more than once per MinRefresh.
func TestJWKSRefresh(t *testing.T) {
	p := newIDP(t, "k1")
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := p.entra()
	opts.MinRefresh = time.Minute
	opts.Now = clock
	body := load(t, "eventgrid_model_registered.json")
	h, _ := authed(t, AuthOptions{Entra: opts})

	if w := send(h, "/api/events", bearer(p.token(t, "k1", nil)), body); w.Code != 200 {
		t.Fatalf("status = %d", w.Code)
	}
	if got := p.fetches.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
	madeUp := p.token(t, "made-up", nil)
	for range 50 {
		send(h, "/api/events", bearer(madeUp), body)
	}
	if got := p.fetches.Load(); got != 1 {
		t.Errorf("fetches after a flood of unknown key IDs = %d, want 1 (at most one per minute)", got)
	}
	// Entra rotates: k2 appears. Within the minute it is not fetched yet.
	p.add(t, "k2")
	if w := send(h, "/api/events", bearer(p.token(t, "k2", nil)), body); w.Code != http.StatusUnauthorized {
		t.Errorf("new key within the refresh bound: status = %d, want 401", w.Code)
	}
	advance(61 * time.Second)
	if w := send(h, "/api/events", bearer(p.token(t, "k2", nil)), body); w.Code != http.StatusOK {
		t.Errorf("rotated key after the bound: status = %d (%s)", w.Code, w.Body)
	}
	if got := p.fetches.Load(); got != 2 {
		t.Errorf("fetches = %d, want 2", got)
	}
	// Known keys are served from the cache.
	send(h, "/api/events", bearer(p.token(t, "k1", nil)), body)
	if got := p.fetches.Load(); got != 2 {
		t.Errorf("fetches = %d, want still 2", got)
	}
}
