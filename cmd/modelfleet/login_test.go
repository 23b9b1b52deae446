package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/internal/oidctest"
)

// approver is the person reading the CLI's stderr: when it shows a code
// they approve (or deny) it at the provider.
type approver struct {
	bytes.Buffer
	t     *testing.T
	op    *oidctest.Provider
	allow bool
}

var codeShown = regexp.MustCompile(`enter the code (\S+)`)

func (a *approver) Write(b []byte) (int, error) {
	if m := codeShown.FindSubmatch(b); m != nil {
		if err := a.op.User(string(m[1]), a.allow); err != nil {
			a.t.Errorf("at the provider: %v", err)
		}
	}
	return a.Buffer.Write(b)
}

// TestLoginCommand runs `modelfleet login` against a real OpenID
// Provider and then checks the CLI's credential chain: $MODELFLEET_TOKEN,
// $MODELFLEET_TOKEN_FILE, the login, the embedded stack's credential, in
// that order; `modelfleet logout` removes the login.
func TestLoginCommand(t *testing.T) {
	op := oidctest.Start(t, "modelfleet-cli", 3*time.Second)
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("HOME", home)
	t.Setenv("MODELFLEET_DATA_DIR", filepath.Join(home, "data"))
	for _, k := range []string{"MODELFLEET_TOKEN", "MODELFLEET_TOKEN_FILE", "MODELFLEET_OIDC_ISSUER", "MODELFLEET_OIDC_CLIENT_ID", "MODELFLEET_OIDC_SCOPE"} {
		t.Setenv(k, "")
	}
	current := func() string {
		t.Helper()
		ts := tokenSource("https://gateway.plant-a.example:8443")
		if ts == nil {
			return ""
		}
		tok, err := ts()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if err := os.MkdirAll(credentialsDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(credentialsDir(), "token"), []byte("dev-credential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := current(); got != "dev-credential" {
		t.Fatalf("before login: %q", got)
	}

	run := func(out *approver, args ...string) error {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(&out.Buffer)
		root.SetErr(out)
		return root.ExecuteContext(context.Background())
	}
	out := &approver{t: t, op: op, allow: true}
	if err := run(out, "login", "--issuer", op.Issuer, "--client-id", op.ClientID); err != nil {
		t.Fatalf("login: %v\n%s", err, out.String())
	}
	path := filepath.Join(home, "config", "modelfleet", "token.json")
	kept, err := (&auth.LoginFile{Path: path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), kept.AccessToken) || strings.Contains(out.String(), kept.RefreshToken) {
		t.Errorf("login printed a token:\n%s", out.String())
	}
	tok := current()
	if tok != kept.AccessToken {
		t.Fatalf("after login the CLI sends %q", tok)
	}
	// The embedded stack's own gateway still gets the embedded stack's
	// credential, never the login's.
	if err := os.WriteFile(filepath.Join(credentialsDir(), "gateway-url"), []byte("https://127.0.0.1:8080/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := tokenSource("https://127.0.0.1:8080")(); err != nil || tok != "dev-credential" {
		t.Fatalf("to the embedded stack's gateway after login the CLI sends %q (%v), want its dev credential", tok, err)
	}
	v, _ := auth.NewOIDC(auth.OIDCConfig{Issuer: op.Issuer, Audience: op.ClientID})
	if p, err := v.Verify(context.Background(), tok); err != nil || p.Subject != op.Subject {
		t.Fatalf("the gateway's verifier: %+v, %v", p, err)
	}

	// Denied (issuer and client from the environment): an error, and the
	// login kept before stays.
	t.Setenv("MODELFLEET_OIDC_ISSUER", op.Issuer)
	t.Setenv("MODELFLEET_OIDC_CLIENT_ID", op.ClientID)
	denied := &approver{t: t, op: op}
	if err := run(denied, "login"); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("denied login: %v", err)
	}
	if current() != tok {
		t.Error("a denied login replaced the token kept")
	}

	file := filepath.Join(home, "token-file")
	if err := os.WriteFile(file, []byte("from-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MODELFLEET_TOKEN_FILE", file)
	if got := current(); got != "from-file" {
		t.Errorf("$MODELFLEET_TOKEN_FILE goes before the login: %q", got)
	}
	t.Setenv("MODELFLEET_TOKEN", "from-env")
	if got := current(); got != "from-env" {
		t.Errorf("$MODELFLEET_TOKEN goes first: %q", got)
	}
	t.Setenv("MODELFLEET_TOKEN", "")
	t.Setenv("MODELFLEET_TOKEN_FILE", "")

	if err := run(&approver{}, "logout"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("logout left %s: %v", path, err)
	}
	if got := current(); got != "dev-credential" {
		t.Errorf("after logout: %q", got)
	}
	if err := run(&approver{}, "login", "--issuer", "http://idp.example.com", "--client-id", "x"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("plain http issuer: %v", err)
	}
}
