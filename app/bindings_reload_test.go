package app

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// TestRoleBindingsReload: the gateway's guard follows its bindings file —
// a valid change is picked up by the poll, or at once by ReloadBindings
// (SIGHUP); a file that does not parse keeps the bindings in force.
func TestRoleBindingsReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bindings.yaml")
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(file, []byte("apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n"+doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("  - {role: viewer, subjects: [viewer@modelfleet.local]}\n")
	gw, err := OpenGateway(GatewayConfig{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Orchestrator: &orchestratortest.Fake{},
		Auth: &AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(dir, "credentials"), BindingsFile: file, BindingsPoll: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	status := func(tokenFile string) int {
		t.Helper()
		c, err := auth.Client(gw.CABundle(), auth.FileToken(filepath.Join(dir, "credentials", tokenFile)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Get(gw.URL() + "/api/sites")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if v, e := status("viewer.token"), status("ml-engineer.token"); v != http.StatusOK || e != http.StatusForbidden {
		t.Fatalf("at start: viewer %d, engineer %d", v, e)
	}

	// The poll notices a change (waiting for it, at most a minute).
	write("  - {role: viewer, subjects: [viewer@modelfleet.local, engineer@modelfleet.local]}\n")
	for deadline := time.Now().Add(time.Minute); status("ml-engineer.token") != http.StatusOK; {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never applied the changed file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// SIGHUP applies at once.
	write("  - {role: viewer, subjects: [engineer@modelfleet.local]}\n")
	if err := gw.ReloadBindings(); err != nil {
		t.Fatal(err)
	}
	if v := status("viewer.token"); v != http.StatusForbidden {
		t.Errorf("after the reload the viewer gets %d", v)
	}

	write("  - {role: viewer, subjects: [viewer@modelfleet.local], scope: {plant: a}}\n")
	if err := gw.ReloadBindings(); err == nil || !strings.Contains(err.Error(), "scope") {
		t.Errorf("broken file: %v", err)
	}
	if v, e := status("viewer.token"), status("ml-engineer.token"); v != http.StatusForbidden || e != http.StatusOK {
		t.Errorf("a broken file changed the bindings: viewer %d, engineer %d", v, e)
	}
	if err := gw.ReloadBindings(); err == nil {
		t.Error("still broken, yet reloaded")
	}
}
