package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
)

// TestRegistryIsGuarded: with authentication on, the embedded registry
// takes registrations from ml-engineers only, and records who registered
// each version (the release's owner) whatever the caller claims.
func TestRegistryIsGuarded(t *testing.T) {
	s := newAuthzStack(t)
	reg, err := registry.Open(filepath.Join(s.dir, "registry"), registry.Options{Subject: registeredBy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(s.gw.sec.guard.Wrap(registryRules(), reg.Handler()))
	t.Cleanup(srv.Close)

	model := func(version string) modelfleet.Model {
		return modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: version}, Format: modelfleet.FormatLightGBM,
			Features:   []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct", "bearing_age_h"},
			Properties: map[string]string{modelfleet.PropRegisteredBy: "someone-else"}}
	}
	file := filepath.Join("..", "examples", "bearing-failure", "model.txt")
	for _, tc := range []struct {
		who  string
		code int
	}{{anon, http.StatusUnauthorized}, {viewer, http.StatusForbidden}, {approver, http.StatusForbidden}, {site1, http.StatusUnauthorized}} {
		rc := &registry.Client{BaseURL: srv.URL, HTTPClient: s.clients[tc.who]}
		_, _, err := rc.Register(context.Background(), model("1"), file, "")
		if code := httpStatusOf(err); code != tc.code {
			t.Errorf("register as %s: %v (status %d), want %d", tc.who, err, code, tc.code)
		}
	}
	if ms, err := reg.List(); err != nil || len(ms) != 0 {
		t.Fatalf("after refused registrations: %d versions, %v", len(ms), err)
	}
	rc := &registry.Client{BaseURL: srv.URL, HTTPClient: s.clients[engineer]}
	got, _, err := rc.Register(context.Background(), model("1"), file, "")
	if err != nil {
		t.Fatal(err)
	}
	if by := got.Properties[modelfleet.PropRegisteredBy]; by != "engineer@modelfleet.local" {
		t.Errorf("registeredBy = %q, want the verified caller engineer@modelfleet.local", by)
	}
	// The worker reads it (validation), a viewer reads metadata but not blobs.
	wc := &registry.Client{BaseURL: srv.URL, HTTPClient: s.clients[workerID]}
	if _, err := wc.Get(context.Background(), "bearing-failure", "1"); err != nil {
		t.Errorf("worker get: %v", err)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/blobs/"+got.Digest, nil)
	if resp, err := s.clients[viewer].Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer blob download: %v %v, want 403", resp, err)
	}
}

// httpStatusOf maps a client error back to the status that caused it.
func httpStatusOf(err error) int {
	switch modelfleet.ErrorCode(err) {
	case modelfleet.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case modelfleet.EFORBIDDEN:
		return http.StatusForbidden
	case "":
		return http.StatusOK
	}
	return -1
}
