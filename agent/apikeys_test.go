package agent

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func scoreWith(t *testing.T, e *Site, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.Record().RouterURL+"/score/bearing-failure", strings.NewReader(sample(t)))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus waits until scoring with key answers want.
func waitStatus(t *testing.T, e *Site, key string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if scoreWith(t, e, key) == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("scoring with key %q never answered %d (answers %d)", key, want, scoreWith(t, e, key))
}

// TestAPIKeysFromTheControlPlaneAndASecret: an operator sets a model's key
// hash through the directory; the site's agent takes it with its desired
// state, keeps it through an offline restart, and a mounted keys file
// overrides it and rotates without a restart.
func TestAPIKeysFromTheControlPlaneAndASecret(t *testing.T) {
	dir := t.TempDir()
	v1 := exampleVersions(t, dir, "1")[0]
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { gw.Close() }()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: "r1", Model: "bearing-failure", New: v1, Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	const cpKey, fileKey, fileKey2 = "control-plane-key-0123456789", "secret-key-0123456789abcdef", "rotated-key-0123456789abcdef"
	keysFile := filepath.Join(dir, "api-keys.yaml")
	siteDir := filepath.Join(dir, "site")
	start := func(file string) (*Site, context.CancelFunc) {
		e, err := Open(Config{SiteID: "s1", DataDir: siteDir, Listen: "127.0.0.1:0", GatewayURL: gw.URL(),
			HeartbeatInterval: 100 * time.Millisecond, NoSignals: true, APIKeysFile: file, APIKeysPoll: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()
		return e, func() { cancel(); <-done; e.Edge.Close() }
	}

	e, stop := start("")
	waitServing(t, e, "1")
	if _, err := gw.Directory.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "bearing-failure",
		SHA256: []string{modelfleet.HashAPIKey(cpKey)}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "", http.StatusUnauthorized)
	if got := scoreWith(t, e, cpKey); got != http.StatusOK {
		t.Fatalf("with the control plane's key: %d", got)
	}
	stop()

	// Offline restart: the keys from the desired state still hold.
	gwURL := gw.URL()
	gw.http.Close()
	e, stop = start("")
	if got := scoreWith(t, e, ""); got != http.StatusUnauthorized {
		t.Fatalf("offline restart without a key: %d, want 401", got)
	}
	if got := scoreWith(t, e, cpKey); got != http.StatusOK {
		t.Fatalf("offline restart with the key: %d, want 200", got)
	}
	stop()
	gw = reopenGateway(t, gw, gwURL)

	// A mounted Secret sets the model's keys: it wins over the desired state.
	write := func(keys ...string) {
		doc := "apiVersion: modelfleet.dev/v1\nkind: RouterAPIKeys\nmodels:\n  bearing-failure:\n    keys: [" + strings.Join(keys, ", ") + "]\n"
		if err := os.WriteFile(keysFile+".tmp", []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(keysFile+".tmp", keysFile); err != nil {
			t.Fatal(err)
		}
	}
	write(fileKey)
	e, stop = start(keysFile)
	defer stop()
	if got := scoreWith(t, e, fileKey); got != http.StatusOK {
		t.Fatalf("with the Secret's key: %d", got)
	}
	if got := scoreWith(t, e, cpKey); got != http.StatusUnauthorized {
		t.Fatalf("with the control plane's key under a Secret: %d, want 401", got)
	}
	// Rotation through the Secret, no restart.
	write(fileKey, fileKey2)
	waitStatus(t, e, fileKey2, http.StatusOK)
	if got := scoreWith(t, e, fileKey); got != http.StatusOK {
		t.Fatalf("old key during the rotation: %d", got)
	}
	write(fileKey2)
	waitStatus(t, e, fileKey, http.StatusUnauthorized)
	if got := scoreWith(t, e, fileKey2); got != http.StatusOK {
		t.Fatalf("new key after the rotation: %d", got)
	}
}
