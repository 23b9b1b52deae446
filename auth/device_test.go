package auth

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/oidctest"
)

const deviceClientID = "modelfleet-cli-device"

// TestDeviceLoginWithARealProvider runs the CLI's login against a real
// OpenID Provider: the person approves the code shown, the token kept
// (0600) is accepted by the gateway's verifier and guard, and once
// expired it is refreshed with the refresh token, written back, and
// accepted again. A denied login, a wrong code, an unknown client and an
// issuer without a device endpoint each fail with a clear error.
func TestDeviceLoginWithARealProvider(t *testing.T) {
	o := oidctest.Start(t, deviceClientID, 3*time.Second)
	ctx := context.Background()
	person := o.Subject

	var shown DevicePrompt
	d := DeviceLogin{Issuer: o.Issuer, ClientID: deviceClientID, Prompt: func(p DevicePrompt) {
		shown = p
		if err := o.User(p.UserCode, true); err != nil {
			t.Errorf("approving %s: %v", p.UserCode, err)
		}
	}}
	tok, err := d.Run(ctx)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if !strings.HasPrefix(shown.VerificationURI, o.Issuer+"/device") || shown.UserCode == "" {
		t.Errorf("prompt = %+v", shown)
	}
	if tok.RefreshToken == "" || tok.Expiry.IsZero() || tok.TokenURL == "" {
		t.Fatalf("token kept = %v", tok)
	}
	if s := tok.String(); strings.Contains(s, tok.AccessToken) || strings.Contains(s, tok.RefreshToken) {
		t.Errorf("String() shows a token: %s", s)
	}

	path := filepath.Join(t.TempDir(), "modelfleet", "token.json")
	if err := (&LoginFile{Path: path}).Save(tok); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}

	// The gateway: its verifier (discovery, JWKS, audience) and its guard
	// with a binding for the person.
	v, err := NewOIDC(OIDCConfig{Issuer: o.Issuer, Audience: deviceClientID})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBindings([]byte("apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n  - {role: viewer, subjects: [" + person + "]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(v, b, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	gw := httptest.NewServer(g.Wrap([]Rule{{Pattern: "GET /api/sites", Any: []Permission{SitesRead}}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, From(r.Context()).Subject) })))
	t.Cleanup(gw.Close)
	get := func(lf *LoginFile) string {
		t.Helper()
		c, err := Client(nil, lf.Token)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(gw.URL + "/api/sites")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("gateway: %s %s", resp.Status, body)
		}
		return string(body)
	}
	if p, err := v.Verify(ctx, tok.AccessToken); err != nil || p.Subject != person || p.Kind != KindPerson {
		t.Fatalf("verify the login's token: %+v, %v", p, err)
	}
	if who := get(&LoginFile{Path: path}); who != person {
		t.Errorf("gateway saw %q, want %q", who, person)
	}

	// Expired: the next command refreshes it and writes it back.
	old, err := (&LoginFile{Path: path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	old.Expiry = time.Now().Add(-time.Minute)
	if err := (&LoginFile{Path: path}).Save(old); err != nil {
		t.Fatal(err)
	}
	if who := get(&LoginFile{Path: path}); who != person {
		t.Errorf("after refresh the gateway saw %q", who)
	}
	renewed, err := (&LoginFile{Path: path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	if renewed.AccessToken == old.AccessToken || renewed.RefreshToken == old.RefreshToken || !renewed.Expiry.After(time.Now()) {
		t.Errorf("not refreshed and written back: %v (was %v)", renewed, old)
	}
	if _, err := v.Verify(ctx, renewed.AccessToken); err != nil {
		t.Errorf("refreshed token: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten with mode %o", fi.Mode().Perm())
	}
	// Several commands at once (a script) find it expired together: they
	// take turns, one refreshes, the others use its token; none spends
	// the rotated-out refresh token.
	renewed.Expiry = time.Now().Add(-time.Minute)
	if err := (&LoginFile{Path: path}).Save(renewed); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := (&LoginFile{Path: path}).Token()
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent refresh: %v", err)
		}
	}
	// The rotated-out refresh token no longer works: a stale copy fails
	// with a clear error rather than a request without a token.
	stale := filepath.Join(t.TempDir(), "token.json")
	if err := (&LoginFile{Path: stale}).Save(old); err != nil {
		t.Fatal(err)
	}
	if _, err := (&LoginFile{Path: stale}).Token(); err == nil || !strings.Contains(err.Error(), "modelfleet login") {
		t.Errorf("stale refresh token: %v", err)
	}

	// The person denies.
	d.Prompt = func(p DevicePrompt) { _ = o.User(p.UserCode, false) }
	_, err = d.Run(ctx)
	t.Log(err)
	if modelfleet.ErrorCode(err) != modelfleet.EFORBIDDEN || !strings.Contains(err.Error(), "denied") {
		t.Errorf("denied: %v", err)
	}
	// The person mistypes the code: the provider refuses it, nobody
	// approves, and the login ends when the code expires.
	d.Prompt = func(p DevicePrompt) {
		if err := o.User("BBBB-BBBB", true); err == nil {
			t.Error("a wrong user code was accepted")
		}
	}
	_, err = d.Run(ctx)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("wrong code: %v", err)
	}
	// A client the issuer does not know.
	d.ClientID, d.Prompt = "nobody", nil
	_, err = d.Run(ctx)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("unknown client: %v", err)
	}
}

// An issuer without a device endpoint (the embedded stack's) is refused
// before anything else is asked of it.
func TestDeviceLoginNeedsADeviceEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := OpenIssuer(t.TempDir(), "http://"+ln.Addr().String(), "modelfleet")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(iss.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	_, err = DeviceLogin{Issuer: iss.URL, ClientID: "cli"}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no device authorization endpoint") {
		t.Errorf("issuer without a device endpoint: %v", err)
	}
	if _, err := (DeviceLogin{Issuer: "http://127.0.0.1:1", ClientID: "cli"}).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "discovery") {
		t.Errorf("unreachable issuer: %v", err)
	}
}

func TestLoginInputsAndFile(t *testing.T) {
	for _, c := range []struct{ issuer, client, scope string }{
		{"", "cli", ""},
		{"http://idp.example.com", "cli", ""}, // plain http off loopback
		{"ftp://idp", "cli", ""},
		{"https://u:p@idp", "cli", ""},
		{"https://idp", "", ""},
		{"https://idp", "a b", ""},
		{"https://idp", strings.Repeat("c", 300), ""},
		{"https://idp", "cli", "openid\x00"},
		{"https://idp", "cli", strings.Repeat("s ", 40)},
	} {
		if err := ValidateLoginInputs(c.issuer, c.client, SplitScopes(c.scope)); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("%q %q %q: %v", c.issuer, c.client, c.scope, err)
		}
	}
	if err := ValidateLoginInputs("https://login.microsoftonline.com/t/v2.0", "cli", SplitScopes("api://gw/.default, offline_access")); err != nil {
		t.Error(err)
	}
	if got := SplitScopes("openid, offline_access  profile"); len(got) != 3 {
		t.Errorf("SplitScopes = %q", got)
	}

	dir := t.TempDir()
	lf := &LoginFile{Path: filepath.Join(dir, "token.json")}
	if _, err := lf.Token(); err == nil || !strings.Contains(err.Error(), "modelfleet login") {
		t.Errorf("no file: %v", err)
	}
	tok := &LoginToken{Issuer: "https://idp", ClientID: "cli", AccessToken: "at", Expiry: time.Now().Add(-time.Hour)}
	if err := lf.Save(tok); err != nil {
		t.Fatal(err)
	}
	if _, err := lf.Token(); err == nil || !strings.Contains(err.Error(), "no refresh token") {
		t.Errorf("expired without a refresh token: %v", err)
	}
	tok.Expiry = time.Time{}
	if err := lf.Save(tok); err != nil {
		t.Fatal(err)
	}
	if got, err := (&LoginFile{Path: lf.Path}).Token(); err != nil || got != "at" {
		t.Errorf("token = %q, %v", got, err)
	}
	if err := os.Chmod(lf.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&LoginFile{Path: lf.Path}).Token(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("a world-readable token: %v", err)
	}
	if ok, err := lf.Remove(); !ok || err != nil {
		t.Errorf("remove: %v %v", ok, err)
	}
	if ok, err := lf.Remove(); ok || err != nil {
		t.Errorf("remove again: %v %v", ok, err)
	}
	for name, doc := range map[string]string{
		"unknown field":  `{"version":1,"issuer":"https://idp","clientId":"c","accessToken":"a","x":1}`,
		"wrong version":  `{"version":2,"issuer":"https://idp","clientId":"c","accessToken":"a"}`,
		"no token":       `{"version":1,"issuer":"https://idp","clientId":"c"}`,
		"refresh no url": `{"version":1,"issuer":"https://idp","clientId":"c","accessToken":"a","refreshToken":"r"}`,
		"bad issuer":     `{"version":1,"issuer":"idp","clientId":"c","accessToken":"a"}`,
		"huge":           strings.Repeat(" ", maxLoginTokenSize+1),
	} {
		if _, err := ParseLoginToken([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzLoginInputs(f *testing.F) {
	f.Add("https://login.microsoftonline.com/t/v2.0", "cli", "api://gw/.default offline_access", []byte(`{"version":1,"issuer":"https://idp","clientId":"c","accessToken":"a"}`))
	f.Fuzz(func(t *testing.T, issuer, client, scope string, file []byte) {
		if ValidateLoginInputs(issuer, client, SplitScopes(scope)) == nil {
			if len(client) > maxClientIDLen || strings.ContainsAny(client, " \t\n") || !strings.HasPrefix(issuer, "http") {
				t.Fatalf("accepted %q %q", issuer, client)
			}
		}
		if tok, err := ParseLoginToken(file); err == nil && (tok.AccessToken == "" || tok.Version != LoginTokenVersion) {
			t.Fatalf("accepted %q", file)
		}
	})
}
