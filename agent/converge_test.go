package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
)

// TestSiteConvergesAfterBeingOffline runs a real gateway directory, a real
// registry and a real edge agent (no Temporal: the desired state is written
// directly, as a release step would). The agent applies a step, goes
// offline, misses the next change, keeps serving, and converges when it
// returns.
func TestSiteConvergesAfterBeingOffline(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1", "2")
	v1, v2 := vs[0], vs[1]

	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	step := func(v modelfleet.DesiredVersion, release string) {
		t.Helper()
		if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"s1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := gw.Directory.Finish(release, "bearing-failure", []string{"s1"}); err != nil {
			t.Fatal(err)
		}
	}
	siteDir := filepath.Join(dir, "site")
	start := func() (*Site, context.CancelFunc) {
		e, err := Open(Config{SiteID: "s1", DataDir: siteDir, Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()
		return e, func() { cancel(); <-done; e.Edge.Close() }
	}

	step(v1, "release/bearing-failure/1")
	e, stop := start()
	waitServing(t, e, "1")
	stop() // the site goes offline

	step(v2, "release/bearing-failure/2") // decided while it is offline

	// Back, with the gateway unreachable at first: it serves its last good
	// model from disk at once.
	gwURL := gw.URL()
	gw.http.Close()
	e, stop = start()
	defer stop()
	if got := servedVersion(t, e); got != "1" {
		t.Fatalf("offline restart serves %q, want the last good version 1", got)
	}
	// The gateway returns: the site converges on version 2 without anyone
	// doing anything.
	gw2 := reopenGateway(t, gw, gwURL)
	defer gw2.Close()
	waitServing(t, e, "2")
	// The report follows the apply: the directory sees it converged.
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, err := gw2.Directory.Progress("bearing-failure", "2", []string{"s1"})
		if err == nil && len(p.Converged) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress = %+v, %v; want s1 converged", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exampleVersions registers the example model under each version in a
// registry in dir/registry, served over HTTP for the test's duration, and
// returns each as a desired version.
func exampleVersions(t *testing.T, dir string, versions ...string) []modelfleet.DesiredVersion {
	t.Helper()
	reg, err := registry.Open(filepath.Join(dir, "registry"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(func() { srv.Close(); reg.Close() })
	var out []modelfleet.DesiredVersion
	for _, v := range versions {
		out = append(out, registerExample(t, reg, srv.URL, v))
	}
	return out
}

func registerExample(t *testing.T, reg *registry.Registry, base, version string) modelfleet.DesiredVersion {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "examples", "bearing-failure", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	card, err := ReadModelCard(filepath.Join("..", "examples", "bearing-failure", "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := reg.Register(context.Background(), modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: version}, Format: card.Format, Features: card.Features}, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return modelfleet.DesiredVersion{Version: version, Digest: m.Digest, Format: m.Format, Features: m.Features, ArtifactURL: base + "/api/blobs/" + m.Digest, Weight: 100}
}

// reopenGateway serves the same directory again on the same address.
func reopenGateway(t *testing.T, old *Gateway, url string) *Gateway {
	t.Helper()
	dataDir := old.dataDir
	old.Directory.Close()
	// The port was free for a while: on a busy machine another process's
	// connection may hold it as its local port for a moment.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		gw, err := OpenGateway(GatewayConfig{Addr: strings.TrimPrefix(url, "http://"), DataDir: dataDir})
		if err == nil {
			return gw
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

func servedVersion(t *testing.T, e *Site) string {
	t.Helper()
	resp, err := http.Post(e.Record().RouterURL+"/score/bearing-failure", "application/json", strings.NewReader(sample(t)))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	return resp.Header.Get("X-Modelfleet-Version")
}

func waitServing(t *testing.T, e *Site, version string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if servedVersion(t, e) == version {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("site never served version %s (serves %q)", version, servedVersion(t, e))
}

func sample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "bearing-failure", "sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSiteRetriesAFailedApply: a version the site cannot install (its
// download fails, as it does on a full disk) is reported with the reason,
// the site keeps serving what it had, and once the fault is gone it
// installs the version with no new revision of its desired state.
func TestSiteRetriesAFailedApply(t *testing.T) {
	dir := t.TempDir()
	reg, err := registry.Open(filepath.Join(dir, "registry"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			http.Error(w, "no space left on device", http.StatusInsufficientStorage)
			return
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); reg.Close() })
	v1, v2 := registerExample(t, reg, srv.URL, "1"), registerExample(t, reg, srv.URL, "2")

	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if _, err := gw.Directory.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	step := func(v modelfleet.DesiredVersion, release string) int64 {
		t.Helper()
		if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: release, Model: "bearing-failure", New: v, Sites: []string{"s1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := gw.Directory.Finish(release, "bearing-failure", []string{"s1"}); err != nil {
			t.Fatal(err)
		}
		d, err := gw.Directory.Desired(context.Background(), "s1", -1)
		if err != nil {
			t.Fatal(err)
		}
		return d.Revision
	}
	step(v1, "release/bearing-failure/1")
	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: gw.URL(), HeartbeatInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; e.Edge.Close() }()
	waitServing(t, e, "1")

	broken.Store(true)
	rev := step(v2, "release/bearing-failure/2")
	deadline := time.Now().Add(15 * time.Second)
	for {
		p, err := gw.Directory.Progress("bearing-failure", "2", []string{"s1"})
		if err == nil && len(p.Failed) == 1 {
			if !strings.Contains(p.Failed[0].Reason, "no space left on device") {
				t.Fatalf("failed with %q, want the download's reason", p.Failed[0].Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress = %+v, %v; want s1 failed", p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := servedVersion(t, e); got != "1" {
		t.Fatalf("serves %q after the failed apply, want the previous version 1", got)
	}
	broken.Store(false)
	waitServing(t, e, "2")
	d, err := gw.Directory.Desired(context.Background(), "s1", -1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Revision != rev {
		t.Fatalf("desired revision %d, want %d: the site converged on a new revision, not by retrying", d.Revision, rev)
	}
}
