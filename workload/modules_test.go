package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/modelfleet/modelfleet/workload/wasm"
)

var (
	badGuestOnce sync.Once
	badGuest     []byte
	badGuestErr  error
)

// badGuestModule is workload/wasm/testdata/badguest built with the Go
// toolchain: a module that loops, allocates without bound or panics on the
// machines named so, refuses machine "refuse", and otherwise writes
// feature i = x + i.
func badGuestModule(t *testing.T) []byte {
	t.Helper()
	badGuestOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "modelfleet-badguest-test.wasm")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, badGuestErr = BuildModule(ctx, "", "./wasm/testdata/badguest", out); badGuestErr == nil {
			badGuest, badGuestErr = os.ReadFile(out)
			os.Remove(out)
		}
	})
	if badGuestErr != nil {
		t.Fatal(badGuestErr)
	}
	return badGuest
}

// blobs is a gateway's artifact store as the site's fetch sees it: it
// serves the bytes it holds and counts downloads.
type blobs struct {
	mu    sync.Mutex
	b     map[string][]byte
	calls int
}

func (s *blobs) fetch(_ context.Context, digest string, w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	b, ok := s.b[digest]
	if !ok {
		return modelfleet.Errorf(modelfleet.ENOTFOUND, "blob %s not found", digest)
	}
	_, err := w.Write(b)
	return err
}

func moduleManifest(code []byte, version string, extra func(*spec.Module)) spec.Manifest {
	m := testManifest(version, 1)
	// The time limit must let the memory bomb reach its memory limit
	// first: under the race detector its growth takes longer than 2 s.
	limit := 2 * time.Second
	if raceEnabled {
		limit = spec.MaxModuleCallTimeout
	}
	m.Module = &spec.Module{Digest: wasm.Digest(code), ABI: spec.ABIVersion, CallTimeout: spec.Duration(limit), MemoryMiB: 48}
	if extra != nil {
		extra(m.Module)
	}
	if err := m.Validate(); err != nil {
		panic(err)
	}
	return m
}

// TestModuleFaultsAreContained runs a module through a real broker: a
// sample that loops forever, one that allocates without bound and one that
// panics are each dead-lettered with their reason, the module's own refusal
// as a preparation failure, and every other sample is decided — nothing is
// lost, the runtime carries on with fresh instances and reports itself
// unhealthy for the fault window.
func TestModuleFaultsAreContained(t *testing.T) {
	code := badGuestModule(t)
	store := &blobs{b: map[string][]byte{wasm.Digest(code): code}}
	ms, err := OpenModules(t.TempDir(), store.fetch)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	prog, err := ms.Program(context.Background(), moduleManifest(code, "2", nil))
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t)
	c := collect(t, b.URL(), "factory/s1/#")
	rt, err := New(Config{Site: "s1", Program: prog, Broker: b.URL(), Scorer: fakeScorer("7")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	pub := publisher(t, b.URL())
	want := map[string]string{"loop": ReasonModuleTimeout, "bomb": ReasonModuleMemory, "panic": ReasonModuleTrap, "refuse": ReasonPrepare}
	seq := int64(0)
	for _, bad := range []string{"loop", "bomb", "panic", "refuse"} {
		seq++
		publish(t, pub, "factory/s1/"+bad+"/telemetry", sample(bad, seq, 1, time.Now()))
		for _, m := range []string{"m1", "m2"} {
			seq++
			publish(t, pub, "factory/s1/"+m+"/telemetry", sample(m, seq, 90, time.Now()))
		}
	}
	c.waitFor(t, int(seq), 50*time.Second, "factory/s1/decisions", "factory/s1/deadletter")
	got := map[string]string{}
	for _, p := range c.all("factory/s1/deadletter") {
		var dl DeadLetter
		if err := json.Unmarshal(p, &dl); err != nil {
			t.Fatal(err)
		}
		var s struct{ Machine string }
		_ = json.Unmarshal([]byte(dl.Payload), &s)
		got[s.Machine] = dl.Reason
		t.Logf("%s: %s: %.160s", s.Machine, dl.Reason, dl.Message)
	}
	for m, reason := range want {
		if got[m] != reason {
			t.Errorf("machine %s dead-lettered as %q, want %q", m, got[m], reason)
		}
	}
	decided := 0
	for _, p := range c.all("factory/s1/decisions") {
		var d Decision
		if err := json.Unmarshal(p, &d); err != nil {
			t.Fatal(err)
		}
		if d.Action != ActionAlert || d.Features["f"] != 90 {
			t.Errorf("decision %+v, want the module's feature 90 and an alert", d)
		}
		decided++
	}
	if decided != 8 || len(got) != 4 {
		t.Errorf("%d decided and %d dead-lettered, want 8 and 4: a message was lost or doubled", decided, len(got))
	}
	if h := rt.Health(); h.Healthy {
		t.Errorf("health %+v: a runtime whose module faulted must report itself unhealthy", h)
	}
}

// TestModulesFromDiskAndDownload: a module missing from the site's disk is
// downloaded, kept content-addressed and compiled; a file altered on disk
// is refused when it is next read (a restart), set aside with the reason,
// and downloaded again the next time; a module that is not ABI v1, or that
// the gateway does not have, fails with why and nothing is kept.
func TestModulesFromDiskAndDownload(t *testing.T) {
	code := badGuestModule(t)
	empty := []byte("\x00asm\x01\x00\x00\x00")
	store := &blobs{b: map[string][]byte{wasm.Digest(code): code, wasm.Digest(empty): empty}}
	dir := t.TempDir()
	ctx := context.Background()
	open := func() *Modules {
		ms, err := OpenModules(dir, store.fetch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ms.Close)
		return ms
	}
	ms := open()
	m := moduleManifest(code, "2", nil)
	if _, err := ms.Program(ctx, m); err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(ms.Path(m.Module.Digest))
	if err != nil || !bytes.Equal(kept, code) || store.calls != 1 {
		t.Fatalf("kept %d bytes (%v) after %d downloads", len(kept), err, store.calls)
	}
	if _, err := open().Program(ctx, m); err != nil || store.calls != 1 {
		t.Fatalf("a restart with the module on disk: %v, %d downloads", err, store.calls)
	}

	kept[len(kept)/2] ^= 1
	if err := os.WriteFile(ms.Path(m.Module.Digest), kept, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = open().Program(ctx, m)
	if err == nil || !strings.Contains(err.Error(), "altered") || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Fatalf("a tampered module file: %v", err)
	}
	if _, err := os.Stat(ms.Path(m.Module.Digest) + ".altered"); err != nil {
		t.Errorf("the altered file was not set aside: %v", err)
	}
	if _, err := open().Program(ctx, m); err != nil || store.calls != 2 {
		t.Fatalf("after the altered file was set aside: %v, %d downloads", err, store.calls)
	}

	bad := moduleManifest(empty, "3", nil)
	if _, err := ms.Program(ctx, bad); err == nil || !strings.Contains(err.Error(), "does not implement ABI 1") {
		t.Errorf("a module without the ABI: %v", err)
	}
	missing := moduleManifest(code, "4", func(mm *spec.Module) { mm.Digest = "sha256:" + strings.Repeat("0", 64) })
	if _, err := ms.Program(ctx, missing); modelfleet.ErrorCode(errors.Unwrap(errors.Unwrap(err))) != modelfleet.ENOTFOUND && !strings.Contains(err.Error(), "not found") {
		t.Errorf("a module the gateway lacks: %v", err)
	}
	if _, err := os.Stat(ms.Path(missing.Module.Digest)); err == nil {
		t.Error("a failed download left a file under the digest")
	}
}

// Built-in code never stands in for the module a manifest names.
func TestCodeRefusesModuleManifest(t *testing.T) {
	m := moduleManifest([]byte("x"), "2", nil)
	c := Code{Name: m.Name, Features: m.FeatureNames(), NewPreparer: func(*spec.Manifest, string) Preparer { return nil }}
	if _, err := c.Program(m); err == nil || !strings.Contains(err.Error(), "names WebAssembly module") {
		t.Errorf("built-in code paired with a module manifest: %v", err)
	}
	m.Module = nil
	if _, err := c.Program(m); err != nil {
		t.Errorf("without a module: %v", err)
	}
}
