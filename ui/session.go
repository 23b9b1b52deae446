package ui

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
)

// LoginCodeTTL is how long a one-time sign-in link stays valid.
const LoginCodeTTL = 15 * time.Minute

// loginCodes are one-time sign-in codes, each standing for a token: the
// link the embedded stack prints at start-up carries one, so the token
// itself never appears in a URL (history, logs, referrers).
type loginCodes struct {
	mu    sync.Mutex
	now   func() time.Time
	codes map[string]loginCode
}

type loginCode struct {
	token   string
	expires time.Time
}

func newLoginCodes(now func() time.Time) *loginCodes {
	return &loginCodes{now: now, codes: map[string]loginCode{}}
}

func (c *loginCodes) add(token string) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	code := base64.RawURLEncoding.EncodeToString(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, v := range c.codes {
		if now.After(v.expires) {
			delete(c.codes, k)
		}
	}
	c.codes[code] = loginCode{token: token, expires: now.Add(LoginCodeTTL)}
	return code, nil
}

// redeem returns the code's token once.
func (c *loginCodes) redeem(code string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.codes[code]
	delete(c.codes, code)
	if !ok || c.now().After(v.expires) {
		return "", false
	}
	return v.token, true
}

// LoginLink returns a one-time sign-in link (path and query, under base)
// for token: the embedded stack prints one at start-up.
func (h *Handler) LoginLink(base, token string) (string, error) {
	code, err := h.codes.add(token)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(base, "/") + Prefix + "login?code=" + code, nil
}

type loginData struct {
	Next string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if code := r.URL.Query().Get("code"); code != "" {
		tok, ok := h.codes.redeem(code)
		if !ok {
			h.loginError(w, r, http.StatusUnauthorized, "this sign-in link was used already or has expired: paste a token instead")
			return
		}
		h.signIn(w, r, tok)
		return
	}
	pg := h.newPage(r, "login", "Sign in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
	pg.CSRF = ""
	h.render(w, http.StatusOK, "login", pg)
}

func (h *Handler) loginError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pg := h.newPage(r, "login", "Sign in", loginData{Next: safeNext(r.FormValue("next"))})
	pg.Error, pg.CSRF = msg, ""
	h.render(w, status, "login", pg)
}

// login takes a pasted token, checks it as the API would, and keeps it
// in the session cookie.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	// A login form posted from another origin would sign the browser in
	// as someone else (login CSRF).
	if !sameOrigin(r) {
		h.loginError(w, r, http.StatusForbidden, "sign-in from another origin refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	tok = strings.TrimSpace(strings.TrimPrefix(tok, "Bearer "))
	if tok == "" {
		h.loginError(w, r, http.StatusBadRequest, "paste a token (for the embedded stack: <data-dir>/credentials/token)")
		return
	}
	h.signIn(w, r, tok)
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request, tok string) {
	if h.cfg.Verify == nil {
		h.loginError(w, r, http.StatusUnauthorized, "this gateway takes no tokens")
		return
	}
	p, err := h.cfg.Verify(r.Context(), tok)
	if err != nil {
		h.loginError(w, r, statusOf(err), modelfleet.ErrorMessage(err))
		return
	}
	if len(p.Has(auth.SitesRead)) == 0 && len(p.Has(auth.ReleasesRead)) == 0 {
		h.loginError(w, r, http.StatusForbidden, p.Subject+" holds no role that may read the fleet")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: auth.SessionCookie, Value: tok, Path: Prefix,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	h.cfg.Logger.Info("ui: signed in", "who", p.Subject)
	http.Redirect(w, r, safeNext(r.FormValue("next")), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: auth.SessionCookie, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext keeps a redirect after sign-in on the dashboard.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, Prefix) || strings.HasPrefix(next, "//") {
		return Prefix + "fleet"
	}
	return u.RequestURI()
}

// sameOrigin reports whether a form post came from this origin (Origin
// or, failing that, Referer); a request naming neither (a non-browser
// client) passes.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
