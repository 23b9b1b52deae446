package auth

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// Rule says what one endpoint needs.
type Rule struct {
	// Pattern is the endpoint, as http.ServeMux patterns are written
	// ("GET /api/sites/{id}").
	Pattern string
	// Public endpoints need no identity (health, metrics, the OIDC
	// issuer's discovery, enrolment with a join token, the Event Grid
	// webhook, which authenticates deliveries itself).
	Public bool
	// Any of these permissions allows the request.
	Any []Permission
	// SiteParam names the path parameter holding the site a site.self
	// request touches: a site may only touch its own records. Empty: the
	// endpoint names no site (an artifact by digest, a baseline).
	SiteParam string
	// Session marks a dashboard page: a person may also authenticate
	// with the session cookie (SessionCookie), and a change made so must
	// carry the session's CSRF token. Refusals go to Guard.Pages.
	Session bool
}

// Guard authenticates every request, authorises it against its route's
// rule, and writes an audit record of every denial and every allowed
// change. A request no rule covers is refused: a new endpoint is closed
// until a rule opens it.
type Guard struct {
	// OIDC verifies bearer tokens (nil: none accepted).
	OIDC *OIDC
	// CA and Enrolments verify site client certificates (the TLS layer
	// checks the chain; the guard checks revocation and names the site).
	CA         *CA
	Enrolments Enrolments
	// CRLs, if set, are a bring-your-own site CA's revocation lists
	// (crl.go): a certificate one lists is refused like a revoked one.
	CRLs     *CRLFiles
	bindings atomic.Pointer[Bindings]
	// Pages, if set, writes the refusal of a Session rule's request (a
	// browser's: a sign-in page rather than a JSON error).
	Pages     func(w http.ResponseWriter, r *http.Request, err error)
	audit     *slog.Logger
	recent    auditRing
	decisions *prometheus.CounterVec
}

// NewGuard returns a guard with bindings; audit records go to log with
// component=audit.
func NewGuard(oidc *OIDC, b *Bindings, log *slog.Logger, reg prometheus.Registerer) *Guard {
	g := &Guard{OIDC: oidc, audit: log.With("log", "audit")}
	g.bindings.Store(b)
	g.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelfleet_auth_decisions_total", Help: "Authorisation decisions at the gateway, by outcome.",
	}, []string{"outcome"})
	if reg != nil {
		reg.MustRegister(g.decisions)
	}
	return g
}

// SetBindings replaces the role bindings (a reloaded file).
func (g *Guard) SetBindings(b *Bindings) { g.bindings.Store(b) }

// Wrap guards next with rules.
func (g *Guard) Wrap(rules []Rule, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, rule := range rules {
		mux.HandleFunc(rule.Pattern, func(w http.ResponseWriter, r *http.Request) { g.serve(rule, next, w, r) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, err := g.Authenticate(r); err != nil {
			g.deny(w, r, Rule{}, nil, "", err)
			return
		}
		httpjson.WriteError(w, modelfleet.Errorf(modelfleet.ENOTFOUND, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (g *Guard) serve(rule Rule, next http.Handler, w http.ResponseWriter, r *http.Request) {
	if rule.Public {
		next.ServeHTTP(w, r)
		return
	}
	p, err := g.authenticate(r, rule.Session)
	if err != nil {
		g.deny(w, r, rule, nil, "", err)
		return
	}
	perm, err := g.authorize(rule, p, r)
	if err != nil {
		g.deny(w, r, rule, p, perm, err)
		return
	}
	g.decisions.WithLabelValues("allowed").Inc()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.audit.Info("allowed", "who", p.Subject, "kind", p.Kind, "method", r.Method, "path", r.URL.Path, "permission", string(perm))
		g.recent.add(AuditRecord{Allowed: true, Who: p.Subject, Action: r.Method + " " + r.URL.Path, Why: string(perm)})
	}
	next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
}

func (g *Guard) authorize(rule Rule, p *Principal, r *http.Request) (Permission, error) {
	for _, perm := range rule.Any {
		if len(p.Has(perm)) == 0 {
			continue
		}
		if perm == SiteSelf && rule.SiteParam != "" {
			if id := r.PathValue(rule.SiteParam); id != p.Site {
				return perm, modelfleet.Errorf(modelfleet.EFORBIDDEN, "site %s may only touch its own records, not %s's", p.Site, id)
			}
		}
		return perm, nil
	}
	var names []string
	for _, perm := range rule.Any {
		names = append(names, fmt.Sprintf("%s (%s)", perm, strings.Join(rolesWith(perm), ", ")))
	}
	return "", modelfleet.Errorf(modelfleet.EFORBIDDEN, "%s %s needs permission %s; %s holds %s",
		r.Method, r.URL.Path, strings.Join(names, " or "), p.Subject, orNone(p.RoleNames()))
}

func (g *Guard) deny(w http.ResponseWriter, r *http.Request, rule Rule, p *Principal, perm Permission, err error) {
	who, kind := "anonymous", ""
	if p != nil {
		who, kind = p.Subject, p.Kind
	}
	g.decisions.WithLabelValues("denied").Inc()
	g.audit.Warn("denied", "who", who, "kind", kind, "method", r.Method, "path", r.URL.Path, "permission", string(perm), "why", err.Error())
	g.recent.add(AuditRecord{Who: who, Action: r.Method + " " + r.URL.Path, Why: err.Error()})
	if rule.Session && g.Pages != nil {
		g.Pages(w, r, err)
		return
	}
	if modelfleet.ErrorCode(err) == modelfleet.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="modelfleet"`)
	}
	httpjson.WriteError(w, err)
}

// Authenticate names the caller: a site by its verified client
// certificate, a person or service by its bearer token.
func (g *Guard) Authenticate(r *http.Request) (*Principal, error) { return g.authenticate(r, false) }

// authenticate is Authenticate, also taking the dashboard's session
// cookie where session is set (a Session rule).
func (g *Guard) authenticate(r *http.Request, session bool) (*Principal, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && g.CA != nil {
		return g.siteFromCert(r.TLS.VerifiedChains[0][0])
	}
	if raw, ok := bearer(r); ok {
		return g.VerifyToken(r.Context(), raw)
	}
	if session {
		raw, err := sessionToken(r)
		if err != nil {
			return nil, err
		}
		return g.VerifyToken(r.Context(), raw)
	}
	return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "authentication required: send \"Authorization: Bearer <token>\" (for the CLI: `modelfleet login`, $MODELFLEET_TOKEN, or the embedded stack's credentials), or a site's client certificate")
}

func (g *Guard) siteFromCert(c *x509.Certificate) (*Principal, error) {
	site, err := SiteFromCert(c)
	if err != nil {
		return nil, err
	}
	if g.Enrolments != nil && g.Enrolments.IsRevoked(c.SerialNumber.Text(16)) {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "site %s's certificate was revoked: enrol the site again (`modelfleet site enroll %s`)", site, site)
	}
	if g.CRLs.Revoked(c) {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "site %s's certificate %s is revoked by a CRL of the site CA", site, c.SerialNumber.Text(16))
	}
	return &Principal{Kind: KindSite, Subject: site, Site: site, Grants: []Grant{{Role: RoleSite}}}, nil
}

// Audit records an allowed or refused action decided outside the route
// table (an approver's scope, a control's statement).
func (g *Guard) Audit(p *Principal, action, object string, allowed bool, why string) {
	who := "anonymous"
	if p != nil {
		who = p.Subject
	}
	if allowed {
		g.audit.Info("allowed", "who", who, "action", action, "object", object, "why", why)
		g.recent.add(AuditRecord{Allowed: true, Who: who, Action: action, Object: object, Why: why})
		return
	}
	g.decisions.WithLabelValues("denied").Inc()
	g.audit.Warn("denied", "who", who, "action", action, "object", object, "why", why)
	g.recent.add(AuditRecord{Who: who, Action: action, Object: object, Why: why})
}

// record audits a change no request made (a reloaded bindings file):
// it is no authorisation decision, so it is not counted as one.
func (g *Guard) record(who, action, object string, allowed bool, why string) {
	if allowed {
		g.audit.Info("allowed", "who", who, "action", action, "object", object, "why", why)
	} else {
		g.audit.Warn("denied", "who", who, "action", action, "object", object, "why", why)
	}
	g.recent.add(AuditRecord{Allowed: allowed, Who: who, Action: action, Object: object, Why: why})
}

func rolesWith(perm Permission) []string {
	var out []string
	for _, r := range Roles() {
		for _, p := range rolePermissions[r] {
			if p == perm {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "no role"
	}
	return "roles " + strings.Join(s, ", ")
}
