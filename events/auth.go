package events

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// Defaults of AuthOptions.
const (
	DefaultKeyQueryParam = "code" // as Azure Functions' webhook URLs carry it
	DefaultKeyHeader     = "X-Modelfleet-Key"
)

// AuthOptions configure Authenticate. Every configured method must pass:
// with Keys, the request carries one of them; with Entra, a valid token.
type AuthOptions struct {
	// Keys are the accepted shared secrets; more than one lets a secret be
	// rotated without downtime (add the new one, move Event Grid's endpoint
	// URL, drop the old one).
	Keys       []string
	QueryParam string // default DefaultKeyQueryParam
	Header     string // default DefaultKeyHeader
	// Entra, if set, also requires a Microsoft Entra bearer token, as Event
	// Grid sends for a subscription with Entra authentication.
	Entra      *EntraOptions
	Logger     *slog.Logger          // default slog.Default()
	Registerer prometheus.Registerer // nil: failures counted, not registered
}

// EntraOptions configure bearer-token validation: RS256 signatures by a key
// of JWKSURL, an issuer and an audience from the lists, exp required and
// nbf honoured, with Leeway for clock skew.
type EntraOptions struct {
	// JWKSURL serves the signing keys, for Entra
	// https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys.
	JWKSURL string
	// Issuers accepted, e.g. https://login.microsoftonline.com/<tenant>/v2.0
	// (v2 tokens) and https://sts.windows.net/<tenant>/ (v1 tokens).
	Issuers []string
	// Audiences accepted: the application ID URI or client ID of the app
	// registration Event Grid requests tokens for.
	Audiences []string
	Leeway    time.Duration // default 1 minute
	// MinRefresh bounds how often an unknown key ID refetches the JWKS
	// (default 1 minute), so tokens with made-up key IDs cannot flood it.
	MinRefresh time.Duration
	// MaxKeyAge refetches the JWKS when a known key is used this long after
	// the last fetch (default 24 hours), to learn revocations.
	MaxKeyAge  time.Duration
	HTTPClient *http.Client     // default: 10 s timeout
	Now        func() time.Time // default time.Now; for tests
}

// Authenticate wraps next (the webhook) so only authenticated requests reach
// it: anything else is answered 401 with a JSON error and a
// WWW-Authenticate header, and nothing is dispatched. It applies to every
// method, so Event Grid's validation handshakes must authenticate too, which
// they do: the key is part of the endpoint URL. The key's query parameter
// is removed before next sees the request. Secrets and tokens are never
// logged.
func Authenticate(next http.Handler, opts AuthOptions) (http.Handler, error) {
	a := &authenticator{next: next, opts: opts}
	if a.opts.QueryParam == "" {
		a.opts.QueryParam = DefaultKeyQueryParam
	}
	if a.opts.Header == "" {
		a.opts.Header = DefaultKeyHeader
	}
	if a.opts.Logger == nil {
		a.opts.Logger = slog.Default()
	}
	if len(opts.Keys) == 0 && opts.Entra == nil {
		return nil, errors.New("webhook authentication: configure shared keys, Entra tokens or both")
	}
	for i, k := range opts.Keys {
		if len(k) < 16 {
			return nil, fmt.Errorf("webhook authentication: key %d is shorter than 16 characters", i)
		}
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	if opts.Entra != nil {
		v, err := newTokenValidator(*opts.Entra)
		if err != nil {
			return nil, err
		}
		a.tokens = v
	}
	a.failures = register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelfleet_event_auth_failures_total",
		Help: "Webhook requests refused as unauthenticated, by reason (missing_key, bad_key, missing_token, bad_token).",
	}, []string{"reason"}))
	return a, nil
}

type authenticator struct {
	next     http.Handler
	opts     AuthOptions
	keys     [][sha256.Size]byte
	tokens   *tokenValidator
	failures *prometheus.CounterVec
}

func (a *authenticator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(a.keys) > 0 {
		if reason, msg := a.checkKey(r); reason != "" {
			a.refuse(w, r, reason, msg)
			return
		}
	}
	if a.tokens != nil {
		if reason, msg := a.checkToken(r); reason != "" {
			a.refuse(w, r, reason, msg)
			return
		}
	}
	if q := r.URL.Query(); q.Has(a.opts.QueryParam) {
		r = r.Clone(r.Context())
		q.Del(a.opts.QueryParam)
		r.URL.RawQuery = q.Encode()
	}
	a.next.ServeHTTP(w, r)
}

// checkKey accepts the request if the header or the query parameter holds
// one of the keys. Both sides are hashed first so the comparison takes the
// same time whatever the lengths, and every key is compared.
func (a *authenticator) checkKey(r *http.Request) (reason, msg string) {
	var given []string
	if v := r.Header.Get(a.opts.Header); v != "" {
		given = append(given, v)
	}
	if v := r.URL.Query().Get(a.opts.QueryParam); v != "" {
		given = append(given, v)
	}
	if len(given) == 0 {
		return "missing_key", fmt.Sprintf("missing key: send it in the %q query parameter or the %s header", a.opts.QueryParam, a.opts.Header)
	}
	match := 0
	for _, g := range given {
		h := sha256.Sum256([]byte(g))
		for _, k := range a.keys {
			match |= subtle.ConstantTimeCompare(h[:], k[:])
		}
	}
	if match != 1 {
		return "bad_key", "the key is not valid"
	}
	return "", ""
}

func (a *authenticator) checkToken(r *http.Request) (reason, msg string) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "missing_token", "missing bearer token"
	}
	if err := a.tokens.validate(r, strings.TrimSpace(tok)); err != nil {
		return "bad_token", "the bearer token is not valid: " + clip(err.Error())
	}
	return "", ""
}

func (a *authenticator) refuse(w http.ResponseWriter, r *http.Request, reason, msg string) {
	a.failures.WithLabelValues(reason).Inc()
	a.opts.Logger.Warn("webhook request refused: unauthenticated", "reason", reason, "method", r.Method, "remote", r.RemoteAddr)
	if a.tokens != nil {
		w.Header().Add("WWW-Authenticate", `Bearer realm="modelfleet", error="invalid_token"`)
	}
	if len(a.keys) > 0 {
		w.Header().Add("WWW-Authenticate", `Key realm="modelfleet"`)
	}
	writeError(w, http.StatusUnauthorized, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "%s", msg))
}

// tokenValidator checks Entra bearer tokens with golang-jwt against keys
// from a JWKS.
type tokenValidator struct {
	opts   EntraOptions
	keys   *jwksCache
	parser *jwt.Parser
}

func newTokenValidator(o EntraOptions) (*tokenValidator, error) {
	if o.JWKSURL == "" || len(o.Issuers) == 0 || len(o.Audiences) == 0 {
		return nil, errors.New("webhook authentication: Entra needs a JWKS URL, issuers and audiences")
	}
	if o.Leeway <= 0 {
		o.Leeway = time.Minute
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = time.Minute
	}
	if o.MaxKeyAge <= 0 {
		o.MaxKeyAge = 24 * time.Hour
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &tokenValidator{
		opts: o,
		keys: &jwksCache{url: o.JWKSURL, client: o.HTTPClient, minRefresh: o.MinRefresh, maxAge: o.MaxKeyAge, now: o.Now},
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}), // never HS256 "signed" with a public key, never none
			jwt.WithLeeway(o.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithAudience(o.Audiences...),
			jwt.WithTimeFunc(o.Now),
		),
	}, nil
}

func (v *tokenValidator) validate(r *http.Request, token string) error {
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New(`token header has no "kid"`)
		}
		return v.keys.key(r.Context(), kid)
	})
	if err != nil {
		return err
	}
	if !slices.Contains(v.opts.Issuers, claims.Issuer) {
		return fmt.Errorf("issuer %q is not accepted", clip(claims.Issuer))
	}
	return nil
}
