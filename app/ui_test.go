package app

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// browser is a client that keeps cookies away from the test's control
// and does not follow redirects: it sends exactly what a browser would.
type browser struct {
	t      *testing.T
	s      *authzStack
	c      *http.Client
	cookie *http.Cookie
}

func newBrowser(t *testing.T, s *authzStack) *browser {
	c, err := auth.Client(s.gw.CABundle(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, s: s, c: c}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.s.gw.URL()+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == auth.SessionCookie {
			b.cookie = c
		}
	}
	return resp, string(body)
}

func (b *browser) signIn(file string) {
	b.t.Helper()
	tok, err := os.ReadFile(filepath.Join(b.s.dir, "credentials", file))
	if err != nil {
		b.t.Fatal(err)
	}
	resp, body := b.do("POST", "/ui/login", url.Values{"token": {strings.TrimSpace(string(tok))}, "next": {"/ui/releases/m/1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/releases/m/1" || b.cookie == nil {
		b.t.Fatalf("sign in as %s: %d %s %s", file, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if c := b.cookie; !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		b.t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/ui/", c)
	}
}

// TestDashboardSession: a person signs in with their token and the pages
// act as them; a change needs the session's CSRF token; a viewer sees no
// button and a forged POST is refused without a signal sent; the cookie
// opens no API endpoint.
func TestDashboardSession(t *testing.T) {
	s := newAuthzStack(t)
	anon := newBrowser(t, s)
	if resp, _ := anon.do("GET", "/ui/fleet?model=m", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login?next=%2Fui%2Ffleet%3Fmodel%3Dm") {
		t.Errorf("anonymous fleet page: %d %s, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := anon.do("POST", "/ui/login", url.Values{"token": {"not-a-token"}}); resp.StatusCode != http.StatusUnauthorized || anon.cookie != nil {
		t.Errorf("sign in with a bad token: %d, cookie %v: %s", resp.StatusCode, anon.cookie, body)
	}

	dev := newBrowser(t, s)
	dev.signIn("token")
	resp, body := dev.do("GET", "/ui/releases/m/1", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="approve"`) || !strings.Contains(body, `value="rollback"`) {
		t.Fatalf("release page as dev: %d %s", resp.StatusCode, body)
	}
	csrf := auth.CSRFToken(dev.cookie.Value)
	if !strings.Contains(body, `name="csrf" value="`+csrf+`"`) {
		t.Errorf("the page's forms do not carry the session's CSRF token")
	}
	// The cookie is no API credential.
	if resp, _ := dev.do("GET", "/api/sites", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/sites with the session cookie: %d, want 401", resp.StatusCode)
	}
	// A cross-site form post carries the cookie but not the token.
	if resp, _ := dev.do("POST", "/ui/releases/m/1/control", url.Values{"action": {"approve"}, "reason": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("approve without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := dev.do("POST", "/ui/releases/m/1/control", url.Values{"action": {"approve"}, "reason": {"x"}, "csrf": {strings.Repeat("0", 64)}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("approve with a wrong CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := dev.do("POST", "/ui/releases/m/1/control", url.Values{"action": {"approve"}, "csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("approve without a reason: %d, want 400", resp.StatusCode)
	}
	if n := len(s.fake.CallsTo(orchestratortest.SignalControl)); n != 0 {
		t.Fatalf("%d controls sent by refused posts", n)
	}
	resp, body = dev.do("POST", "/ui/releases/m/1/control", url.Values{"action": {"approve"}, "reason": {"canary fine"}, "csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	calls := s.fake.CallsTo(orchestratortest.SignalControl)
	if len(calls) != 1 {
		t.Fatalf("controls sent: %v", calls)
	}
	st, err := modelfleet.VerifyControl(calls[0].Payload.(modelfleet.Control), s.gw.sec.ControlKeys(), modelfleet.SignalApprove, "release/m/1", time.Now())
	if err != nil || st.Subject != "dev@modelfleet.local" || st.Reason != "canary fine" {
		t.Errorf("signed statement = %+v, %v", st, err)
	}

	viewer := newBrowser(t, s)
	viewer.signIn("viewer.token")
	resp, body = viewer.do("GET", "/ui/releases/m/1", nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "<button type=\"submit\" name=\"action\"") || !strings.Contains(body, "release/m/1") && !strings.Contains(body, "m:1") {
		t.Errorf("release page as viewer: %d, want no control buttons: %s", resp.StatusCode, body)
	}
	// Forged: the viewer's own valid session and CSRF token, a button
	// the page never showed.
	resp, body = viewer.do("POST", "/ui/releases/m/1/control", url.Values{"action": {"approve"}, "reason": {"x"}, "csrf": {auth.CSRFToken(viewer.cookie.Value)}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "releases.approve") {
		t.Errorf("a viewer's forged approve: %d %s", resp.StatusCode, body)
	}
	if n := len(s.fake.CallsTo(orchestratortest.SignalControl)); n != 1 {
		t.Errorf("%d controls sent, want still 1", n)
	}

	// The approver scoped to plant-a sees the buttons (they may approve
	// somewhere) but the gateway refuses a gate whose next wave is out of
	// scope, as the API does.
	ap := newBrowser(t, s)
	ap.signIn("approver-plant-a.token")
	resp, body = ap.do("POST", "/ui/releases/m/1/control", url.Values{"action": {"approve"}, "reason": {"x"}, "csrf": {auth.CSRFToken(ap.cookie.Value)}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "in scope") {
		t.Errorf("out-of-scope approve: %d %s", resp.StatusCode, body)
	}

	// The audit on the queues page: an admin's, not a viewer's.
	admin := newBrowser(t, s)
	admin.signIn("admin.token")
	_, body = admin.do("GET", "/ui/queues", nil)
	for _, want := range []string{"viewer@modelfleet.local", "POST /ui/releases/m/1/control", "approver-a@modelfleet.local", "in scope", "dev@modelfleet.local"} {
		if !strings.Contains(body, want) {
			t.Errorf("the admin's audit lacks %q", want)
		}
	}
	if _, body = viewer.do("GET", "/ui/queues", nil); strings.Contains(body, "Audit: controls and denials") {
		t.Error("a viewer sees the audit")
	}

	// Signing out clears the cookie.
	resp, _ = dev.do("POST", "/ui/logout", url.Values{})
	if resp.StatusCode != http.StatusSeeOther || dev.cookie.MaxAge >= 0 {
		t.Errorf("sign out: %d, cookie %+v", resp.StatusCode, dev.cookie)
	}
}

// TestDashboardLoginLink: the link `modelfleet dev` prints signs in once.
func TestDashboardLoginLink(t *testing.T) {
	s := newAuthzStack(t)
	link, err := s.gw.DashboardLink("viewer.token")
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(link, s.gw.URL())
	b := newBrowser(t, s)
	if resp, body := b.do("GET", path, nil); resp.StatusCode != http.StatusSeeOther || b.cookie == nil {
		t.Fatalf("first use: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.do("GET", "/ui/fleet", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "viewer@modelfleet.local") || !strings.Contains(body, "site-1") {
		t.Errorf("fleet page after the link: %d %s", resp.StatusCode, body)
	}
	again := newBrowser(t, s)
	if resp, _ := again.do("GET", path, nil); resp.StatusCode != http.StatusUnauthorized || again.cookie != nil {
		t.Errorf("second use: %d, cookie %v; want 401 and none", resp.StatusCode, again.cookie)
	}
}
