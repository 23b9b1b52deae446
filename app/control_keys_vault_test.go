package app

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/keyvault/kvtest"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

// Control-statement keys in Key Vault (the SDK's fake vault): the gateway
// signs every approval with the vault key (ES256) and its key files; a
// release that trusts either key verifies the statement (what the
// workflow calls, modelfleet.VerifyControl), one that trusts neither does
// not; a gateway with only a vault key creates no control key file.
func TestControlKeysInKeyVault(t *testing.T) {
	v := kvtest.New()
	v.AddKey(t, "control", time.Now())
	ctx := context.Background()
	vk, err := OpenVaultKeys(ctx, []string{v.KeyURL("control")}, v.Credential(), v.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	approve := func(t *testing.T, pki string) (modelfleet.Control, *Gateway) {
		t.Helper()
		dir := t.TempDir()
		fake := &orchestratortest.Fake{Statuses: map[string]modelfleet.ReleaseStatus{
			"release/m/1": {
				Model: modelfleet.ModelRef{Name: "m", Version: "1"}, State: modelfleet.StateAwaitingApproval,
				Gate:  &modelfleet.GateStatus{After: "canary"},
				Waves: []modelfleet.WaveStatus{{Name: "canary"}, {Name: "fleet"}},
				Sites: []modelfleet.SiteStatus{{Site: "site-1", Wave: "canary"}},
			},
		}}
		fake.SetRunning("release/m/1")
		gw, err := OpenGateway(GatewayConfig{
			Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Orchestrator: fake,
			Auth: &AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(dir, "credentials"), PKIDir: pki, ControlVaultKeys: vk},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close() })
		tok, err := os.ReadFile(filepath.Join(dir, "credentials", "token"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := auth.Client(gw.CABundle(), auth.StaticToken(strings.TrimSpace(string(tok))))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Post(gw.URL()+"/api/controls", "application/json", strings.NewReader(`{"release":"release/m/1","action":"approve","reason":"canary fine"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("approve: %d", resp.StatusCode)
		}
		calls := fake.CallsTo(orchestratortest.SignalControl)
		if len(calls) != 1 {
			t.Fatalf("signals sent: %v", calls)
		}
		return calls[0].Payload.(modelfleet.Control), gw
	}
	verify := func(ctl modelfleet.Control, keys ...modelfleet.TrustedKey) error {
		_, err := modelfleet.VerifyControl(ctl, keys, modelfleet.SignalApprove, "release/m/1", time.Now())
		return err
	}
	vaultKey, err := modelfleet.TrustedKeyOf(vk[0].Public())
	if err != nil {
		t.Fatal(err)
	}

	// Beside a key file: both sign, the vault's first.
	pki := t.TempDir()
	if _, err := loadControlKeys(filepath.Join(pki, "control-keys")); err != nil { // the file releases started before trust
		t.Fatal(err)
	}
	ctl, gw := approve(t, pki)
	keys := gw.sec.ControlKeys()
	if len(keys) != 2 || keys[0].ID != vaultKey.ID || !strings.HasPrefix(keys[1].ID, "ed25519:") {
		t.Fatalf("control keys %v, want the vault's then the file's", keys)
	}
	if len(ctl.Statement.Signatures) != 2 || ctl.Statement.Signatures[0].KeyID != vaultKey.ID {
		t.Fatalf("signatures %v, want the vault's first", ctl.Statement.Signatures)
	}
	if err := verify(ctl, vaultKey); err != nil {
		t.Errorf("a release trusting the vault key: %v", err)
	}
	if err := verify(ctl, keys[1]); err != nil {
		t.Errorf("a release started before the vault key (the file's only): %v", err)
	}
	other := kvtest.New()
	other.AddKey(t, "control", time.Now())
	ok, err := OpenVaultKeys(ctx, []string{other.KeyURL("control")}, other.Credential(), other.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := modelfleet.TrustedKeyOf(ok[0].Public())
	if err := verify(ctl, otherKey); err == nil {
		t.Error("a statement verifies under another vault's key")
	}

	// The vault key alone: no file created.
	pki = t.TempDir()
	ctl, _ = approve(t, pki)
	if len(ctl.Statement.Signatures) != 1 || verify(ctl, vaultKey) != nil {
		t.Fatalf("vault only: signatures %v", ctl.Statement.Signatures)
	}
	if files, _ := filepath.Glob(filepath.Join(pki, "control-keys", "*.key")); len(files) != 0 {
		t.Errorf("a gateway with a vault control key created %v", files)
	}
}
