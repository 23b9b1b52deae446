package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"

	"github.com/modelfleet/modelfleet"
)

// SessionCookie is the browser session of the dashboard (/ui/): it
// carries the person's bearer token, HttpOnly and SameSite=Strict, so the
// pages are authorised exactly as the API is. Only rules with Session set
// accept it: the API's endpoints never take a cookie, so no page of
// another origin can make a browser call them with one.
const SessionCookie = "modelfleet_session"

// CSRFField is the form field (or X-CSRF-Token header) a change made
// with the session cookie must carry.
const CSRFField = "csrf"

// CSRFToken is the CSRF token of a session carrying token: derived from
// it, so every gateway replica agrees without shared state, and unknown
// to a page that cannot read the HttpOnly cookie.
func CSRFToken(token string) string {
	h := sha256.Sum256([]byte("modelfleet csrf v1\x00" + token))
	return hex.EncodeToString(h[:])
}

// VerifyToken authenticates a bearer token as a request carrying it
// would be, with the bindings' grants: the dashboard's login checks a
// pasted token with it before setting the cookie.
func (g *Guard) VerifyToken(ctx context.Context, raw string) (*Principal, error) {
	if g.OIDC == nil {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "this gateway takes no bearer tokens")
	}
	p, err := g.OIDC.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	p.Grants = g.bindings.Load().Grants(p)
	return p, nil
}

// sessionToken returns the token of r's session cookie; a request that
// changes something must also carry the session's CSRF token.
func sessionToken(r *http.Request) (string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "sign in first (no session)")
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return c.Value, nil
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		// A form: bounded, and parsed here so the handler reads the same
		// values.
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		got = r.PostFormValue(CSRFField)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(CSRFToken(c.Value))) != 1 {
		return "", modelfleet.Errorf(modelfleet.EFORBIDDEN, "the form's CSRF token does not match the session: reload the page and try again")
	}
	return c.Value, nil
}
