package app

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/internal/pgtest"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// Two gateway replicas with authentication on, one PostgreSQL store and
// one PKI directory: a site enrols at one with a join token the other
// made, its certificate works at both, the token works only once, and a
// revocation at one is refused by the other within its poll; the revoked
// certificate cannot be renewed at either.
func TestGatewayReplicasShareEnrolments(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	var gws []*Gateway
	for _, name := range []string{"a", "b"} {
		gw, err := OpenGateway(GatewayConfig{
			Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, name), Store: dsn, Orchestrator: &orchestratortest.Fake{},
			Auth: &AuthConfig{DevIssuer: true, PKIDir: pki, CredentialsDir: filepath.Join(dir, name, "credentials"), RevocationPoll: 50 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close() })
		gws = append(gws, gw)
	}
	a, b := gws[0], gws[1]
	if _, err := os.Stat(filepath.Join(pki, "enrolments.json.log")); !os.IsNotExist(err) {
		t.Errorf("a gateway on PostgreSQL wrote the enrolment file: %v", err)
	}

	tok, err := a.JoinToken("site-1", map[string]string{"plant": "a"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := agent.Enroll(ctx, b.URL(), tok, filepath.Join(dir, "site-1"))
	if err != nil {
		t.Fatalf("enrolling at b with a's join token: %v", err)
	}
	if _, err := agent.Enroll(ctx, a.URL(), tok, filepath.Join(dir, "again")); err == nil || !strings.Contains(err.Error(), "unknown or already used") {
		t.Errorf("the join token, again at a: %v", err)
	}
	tr, err := id.Transport()
	if err != nil {
		t.Fatal(err)
	}
	site := &http.Client{Transport: tr}
	whoami := func(gw *Gateway) int {
		resp, err := site.Get(gw.URL() + "/api/whoami")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, gw := range gws {
		if code := whoami(gw); code != http.StatusOK {
			t.Fatalf("the enrolled site at replica %d: %d", i, code)
		}
	}

	// Revoked through b's API, as `modelfleet site revoke` does.
	adminTok, err := os.ReadFile(filepath.Join(dir, "b", "credentials", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	adm, err := auth.Client(b.CABundle(), auth.StaticToken(strings.TrimSpace(string(adminTok))))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adm.Post(b.URL()+"/api/sites/site-1/revoke", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d", resp.StatusCode)
	}
	if code := whoami(b); code != http.StatusUnauthorized {
		t.Errorf("the revoked site at the replica that revoked it: %d", code)
	}
	// Whether or not a has polled yet, the revoked certificate renews
	// nothing there.
	if err := id.Renew(ctx, a.URL()); err == nil {
		t.Error("the revoked certificate was renewed at the other replica")
	}
	deadline := time.Now().Add(30 * time.Second) // a liveness bound, not a timing
	for whoami(a) != http.StatusUnauthorized && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if code := whoami(a); code != http.StatusUnauthorized {
		t.Errorf("the revoked site at the other replica after its poll: %d", code)
	}
}
