package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
)

// `model register --file <MLflow directory>` packs the directory, takes
// the features from its signature and registers it as format mlflow at a
// real embedded registry, with the digest `model pack` prints; a package
// holding only a pickle is refused before anything is registered.
func TestModelRegisterMLflowDirectory(t *testing.T) {
	reg, err := registry.Open(t.TempDir(), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	t.Setenv("MODELFLEET_REGISTRY_URL", srv.URL)
	run := func(args ...string) error {
		root := newRoot()
		root.SetArgs(args)
		return root.ExecuteContext(context.Background())
	}
	// A copy: the golden directory has no model card or policy beside it.
	dir := filepath.Join(t.TempDir(), "model")
	if err := os.CopyFS(dir, os.DirFS("../../inference/testdata/mlflow/golden/xgboost_json")); err != nil {
		t.Fatal(err)
	}
	if err := run("model", "register", "--name", "bearing-xgb", "--version", "1", "--file", dir+"/"); err != nil {
		t.Fatal(err)
	}
	m, err := reg.Get("bearing-xgb", "1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"vibration_rms_mm_s", "vibration_peak_g", "temperature_c", "speed_rpm", "load_pct"}
	if m.Format != modelfleet.FormatMLflow || !slices.Equal(m.Features, want) {
		t.Fatalf("registered format %q, features %q", m.Format, m.Features)
	}
	archive := filepath.Join(t.TempDir(), "model.tar")
	if err := run("model", "pack", dir, "-o", archive); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != m.Digest {
		t.Fatalf("registered digest %s, pack's %s", m.Digest, got)
	}
	// Registering the same directory again is the same content.
	if err := run("model", "register", "--name", "bearing-xgb", "--version", "1", "--file", dir); err != nil {
		t.Fatalf("same directory again: %v", err)
	}

	err = run("model", "register", "--name", "bearing-sk", "--version", "1", "--file", "../../inference/testdata/mlflow/golden/sklearn_pickle")
	if err == nil || !strings.Contains(err.Error(), "arbitrary code") {
		t.Fatalf("pickle package: %v", err)
	}
	if _, err := reg.Get("bearing-sk", "1"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("pickle package registered: %v", err)
	}
}
