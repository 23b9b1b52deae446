package auth

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/oauth2"

	"github.com/modelfleet/modelfleet"
)

// startOP runs zitadel/oidc's OpenID Provider in-process (its example
// server: in-memory users and clients, a username/password login page), a
// real OIDC implementation rather than tokens made by hand.
func startOP(t *testing.T) (issuer string, client *storage.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer = "http://" + ln.Addr().String()
	st := storage.NewStorage(storage.NewUserStore(issuer))
	client = storage.WebClient("modelfleet-cli", "s3cret", "http://127.0.0.1/callback")
	storage.RegisterClients(client)
	srv := httptest.NewUnstartedServer(exampleop.SetupServer(issuer, st, nil, false))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer, client
}

// login runs the authorisation-code flow as a browser would (the login
// form with the example's test user) and returns the ID token.
func login(t *testing.T, issuer string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	const redirect = "http://127.0.0.1/callback"
	hc := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"client_id": {"modelfleet-cli"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid profile email"}, "state": {"x"}}
	resp, err := hc.Get(issuer + "/auth?" + q.Encode()) // the example provider renames /authorize
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("no login page: ended at %s (%s)", resp.Request.URL, resp.Status)
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(issuer, "http://"))
	resp, err = hc.PostForm(issuer+"/login/username", url.Values{"username": {"test-user@" + host}, "password": {"verysecure"}, "id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("login: %s, location %v", resp.Status, loc)
	}
	conf := oauth2.Config{ClientID: "modelfleet-cli", ClientSecret: "s3cret", RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{TokenURL: issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := conf.Exchange(context.Background(), loc.Query().Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		t.Fatal("no id_token in the token response")
	}
	return idToken
}

// TestOIDCWithARealProvider: a token a real OpenID Provider issued, by
// its authorisation-code flow, verifies by discovery and JWKS; one for
// another audience, a tampered one or one from another issuer does not.
func TestOIDCWithARealProvider(t *testing.T) {
	issuer, _ := startOP(t)
	raw := login(t, issuer)
	ctx := context.Background()

	v, err := NewOIDC(OIDCConfig{Issuer: issuer, Audience: "modelfleet-cli"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if p.Kind != KindPerson || p.Subject == "" {
		t.Errorf("principal = %+v", p)
	}
	b, err := ParseBindings([]byte("apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n  - {role: approver, subjects: [" + p.Subject + "], scope: {plant: a}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g := b.Grants(p); len(g) != 1 || g[0].Role != RoleApprover || g[0].Scope["plant"] != "a" {
		t.Errorf("grants = %+v", g)
	}

	other, _ := NewOIDC(OIDCConfig{Issuer: issuer, Audience: "someone-else"})
	if _, err := other.Verify(ctx, raw); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
		t.Errorf("another audience: %v", err)
	}
	parts := strings.Split(raw, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	if _, err := v.Verify(ctx, tampered); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
		t.Errorf("tampered token: %v", err)
	}
	issuer2, _ := startOP(t)
	elsewhere, _ := NewOIDC(OIDCConfig{Issuer: issuer2, Audience: "modelfleet-cli"})
	if _, err := elsewhere.Verify(ctx, raw); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
		t.Errorf("a token from another issuer: %v", err)
	}
	if _, err := v.Verify(ctx, strings.Repeat("a", 17<<10)); err == nil {
		t.Error("an oversize token verified")
	}
	// Unreachable issuer: refused, not a crash, and not retried at once.
	gone, _ := NewOIDC(OIDCConfig{Issuer: "http://127.0.0.1:1", Audience: "x"})
	if _, err := gone.Verify(ctx, raw); err == nil || !strings.Contains(err.Error(), "discovery") {
		t.Errorf("unreachable issuer: %v", err)
	}
}
