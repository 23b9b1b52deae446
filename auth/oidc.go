package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/modelfleet/modelfleet"
)

// OIDCConfig says which bearer tokens the gateway accepts: those an OIDC
// issuer signed (found by discovery, keys from its JWKS) for the
// audience. Microsoft Entra ID: issuer
// https://login.microsoftonline.com/<tenant>/v2.0, audience the API's
// application ID (URI); Keycloak, ADFS, Dex and other issuers alike.
type OIDCConfig struct {
	Issuer   string
	Audience string
	// SubjectClaims are tried in order for a person's name (default
	// preferred_username, email, upn, sub); GroupsClaim and RolesClaim
	// name the claims groups and app roles come in (default groups,
	// roles).
	SubjectClaims           []string
	GroupsClaim, RolesClaim string
	// Tenants, if set, are the only Entra tenant IDs (tid) accepted.
	Tenants []string
	// HTTPClient fetches discovery and keys (default http.DefaultClient).
	HTTPClient *http.Client
	// KeySet, if set, verifies signatures instead of the issuer's JWKS (an
	// issuer in the same process).
	KeySet oidc.KeySet
}

// OIDC verifies bearer tokens.
type OIDC struct {
	cfg      OIDCConfig
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	lastTry  time.Time
}

// NewOIDC returns a verifier; discovery runs at the first token, and
// again (at most every 10 s) until it succeeds, so the gateway starts
// while its issuer is unreachable.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("oidc: the issuer and the audience are required")
	}
	if len(cfg.SubjectClaims) == 0 {
		cfg.SubjectClaims = []string{"preferred_username", "email", "upn", "sub"}
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	return &OIDC{cfg: cfg}, nil
}

func (o *OIDC) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	conf := &oidc.Config{ClientID: o.cfg.Audience, SupportedSigningAlgs: []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}}
	if o.cfg.KeySet != nil {
		o.verifier = oidc.NewVerifier(o.cfg.Issuer, o.cfg.KeySet, conf)
		return o.verifier, nil
	}
	if time.Since(o.lastTry) < 10*time.Second {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "the token issuer %s is not reachable yet", o.cfg.Issuer)
	}
	o.lastTry = time.Now()
	if o.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	// The provider's key set outlives this request.
	p, err := oidc.NewProvider(context.WithoutCancel(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "token issuer %s: discovery failed: %v", o.cfg.Issuer, err)
	}
	o.verifier = p.Verifier(conf)
	return o.verifier, nil
}

// Verify checks a bearer token and returns its principal (without
// grants: the bindings give those).
func (o *OIDC) Verify(ctx context.Context, raw string) (*Principal, error) {
	if len(raw) > 16<<10 {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "bearer token over 16 KiB")
	}
	v, err := o.get(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "bearer token: %v", err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "bearer token claims: %v", err)
	}
	if len(o.cfg.Tenants) > 0 {
		tid, _ := claims["tid"].(string)
		if !slices.Contains(o.cfg.Tenants, tid) {
			return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "bearer token from tenant %q, which this gateway does not accept", tid)
		}
	}
	p := &Principal{Kind: KindPerson, Groups: stringList(claims[o.cfg.GroupsClaim]), AppRoles: stringList(claims[o.cfg.RolesClaim])}
	for _, c := range o.cfg.SubjectClaims {
		if s, _ := claims[c].(string); s != "" {
			p.Subject = s
			break
		}
	}
	// A client-credentials token names a client, not a user: Entra marks
	// it idtyp=app; elsewhere its subject is the client itself.
	sub, _ := claims["sub"].(string)
	for _, c := range []string{"azp", "appid", "client_id"} {
		client, _ := claims[c].(string)
		if client == "" {
			continue
		}
		if idtyp, _ := claims["idtyp"].(string); idtyp == "app" || sub == client {
			p.Kind, p.Subject = KindService, client
		}
		break
	}
	if p.Subject == "" {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "bearer token names no subject (claims %s)", strings.Join(o.cfg.SubjectClaims, ", "))
	}
	return p, nil
}

func stringList(v any) []string {
	switch v := v.(type) {
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return strings.Fields(v)
	}
	return nil
}

// bearer extracts a bearer token from a request.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}
