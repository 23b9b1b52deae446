package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

const testCSV = "label,f1,f2\n1,0.5,0.2\n0,0.1,0.9\n"

func openTest(t *testing.T, dir string, opts Options) *Registry {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func testModel(name, version string) modelfleet.Model {
	return modelfleet.Model{
		ModelRef: modelfleet.ModelRef{Name: name, Version: version},
		Format:   modelfleet.FormatLightGBM,
		Features: []string{"f1", "f2"},
	}
}

func withValidation(m modelfleet.Model) modelfleet.Model {
	m.Validation = &modelfleet.ValidationSpec{Metric: modelfleet.MetricAUC, Threshold: 0.8}
	return m
}

func sha(b string) string {
	s := sha256.Sum256([]byte(b))
	return "sha256:" + hex.EncodeToString(s[:])
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := modelfleet.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
}

func register(t *testing.T, r *Registry, m modelfleet.Model, artifact string, data *string) (modelfleet.Model, bool) {
	t.Helper()
	var dr io.Reader
	if data != nil {
		dr = strings.NewReader(*data)
	}
	got, created, err := r.Register(context.Background(), m, strings.NewReader(artifact), dr)
	if err != nil {
		t.Fatalf("Register(%s): %v", m.ModelRef, err)
	}
	return got, created
}

func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	for _, sub := range []string{"sha256", "tmp"} {
		es, err := os.ReadDir(filepath.Join(dir, "blobs", sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			names = append(names, sub+"/"+e.Name())
		}
	}
	return names
}

func TestContentAddressing(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir, Options{})
	const art = "tree\nversion=v3\n"

	a, _ := register(t, r, testModel("a", "1"), art, nil)
	b, _ := register(t, r, testModel("b", "1"), art, nil)
	if a.Digest != sha(art) || b.Digest != a.Digest {
		t.Fatalf("digests %s, %s; want both %s", a.Digest, b.Digest, sha(art))
	}
	if a.Size != int64(len(art)) {
		t.Errorf("size = %d, want %d", a.Size, len(art))
	}
	if files := blobFiles(t, dir); !slices.Equal(files, []string{"sha256/" + strings.TrimPrefix(a.Digest, "sha256:")}) {
		t.Errorf("blob files = %q, want the one blob and no temp files", files)
	}
	rc, n, err := r.OpenBlob(a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if string(got) != art || n != int64(len(art)) {
		t.Errorf("OpenBlob = %q (%d bytes), want %q", got, n, art)
	}
}

func TestOpenBlobErrors(t *testing.T) {
	r := openTest(t, "", Options{})
	_, _, err := r.OpenBlob("sha256:../../registry.db")
	wantCode(t, err, modelfleet.EINVALID)
	rc, _, err := r.OpenBlob(sha("nothing"))
	wantCode(t, err, modelfleet.ENOTFOUND)
	if rc != nil {
		t.Error("OpenBlob returned a non-nil reader with an error")
	}
	if !strings.Contains(err.Error(), sha("nothing")) {
		t.Errorf("error %q does not name the digest", err)
	}
}

func TestRegisterIdempotent(t *testing.T) {
	r := openTest(t, "", Options{})
	data := testCSV
	first, created := register(t, r, withValidation(testModel("churn", "3")), "model-bytes", &data)
	if !created {
		t.Fatal("first Register: created = false")
	}
	if first.Validation.DataDigest != sha(testCSV) || first.CreatedAt == "" {
		t.Fatalf("first = %+v, %+v", first, first.Validation)
	}
	again, created := register(t, r, withValidation(testModel("churn", "3")), "model-bytes", &data)
	if created {
		t.Error("second Register: created = true")
	}
	if again.CreatedAt != first.CreatedAt || again.Digest != first.Digest {
		t.Errorf("second Register returned %+v, want the stored %+v", again, first)
	}
	if n := r.Pending(); n != 1 {
		t.Errorf("Pending = %d, want 1 event for one version", n)
	}
}

func TestRegisterConflict(t *testing.T) {
	r := openTest(t, "", Options{})
	data := testCSV
	first, _ := register(t, r, withValidation(testModel("x", "1")), "one", &data)

	_, _, err := r.Register(context.Background(), withValidation(testModel("x", "1")), strings.NewReader("two"), strings.NewReader(testCSV))
	wantCode(t, err, modelfleet.ECONFLICT)
	want := `model "x" version "1" already exists with digest ` + first.Digest
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}

	other := withValidation(testModel("x", "1"))
	other.Validation.Threshold = 0.5
	_, _, err = r.Register(context.Background(), other, strings.NewReader("one"), strings.NewReader(testCSV))
	wantCode(t, err, modelfleet.ECONFLICT)

	_, _, err = r.Register(context.Background(), withValidation(testModel("x", "1")), strings.NewReader("one"), strings.NewReader("label\n1\n"))
	wantCode(t, err, modelfleet.ECONFLICT)

	if n := r.Pending(); n != 1 {
		t.Errorf("Pending = %d after conflicts, want 1", n)
	}
}

func TestRegisterValidation(t *testing.T) {
	valid := testModel("m", "1")
	tests := []struct {
		name   string
		m      func() modelfleet.Model
		noData bool // when the model declares validation
		data   bool // when it does not
	}{
		{"spec without data", func() modelfleet.Model { return withValidation(valid) }, true, false},
		{"data without spec", func() modelfleet.Model { return valid }, false, true},
		{"bad metric", func() modelfleet.Model { m := withValidation(valid); m.Validation.Metric = "vibes"; return m }, false, false},
		{"threshold out of range", func() modelfleet.Model { m := withValidation(valid); m.Validation.Threshold = 1.5; return m }, false, false},
		{"bad name", func() modelfleet.Model { m := valid; m.Name = "../etc"; return m }, false, false},
		{"missing version", func() modelfleet.Model { m := valid; m.Version = ""; return m }, false, false},
		{"bad format", func() modelfleet.Model { m := valid; m.Format = "pmml"; return m }, false, false},
		{"duplicate feature", func() modelfleet.Model { m := valid; m.Features = []string{"a", "a"}; return m }, false, false},
		{"malformed expected digest", func() modelfleet.Model { m := valid; m.Digest = "md5:abc"; return m }, false, false},
		{"wrong expected digest", func() modelfleet.Model { m := valid; m.Digest = sha("other"); return m }, false, false},
		{"wrong expected size", func() modelfleet.Model { m := valid; m.Size = 99; return m }, false, false},
		{"wrong expected data digest", func() modelfleet.Model {
			m := withValidation(valid)
			m.Validation.DataDigest = sha("other")
			return m
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := openTest(t, dir, Options{})
			m := tt.m()
			var data io.Reader
			if (m.Validation != nil && !tt.noData) || tt.data {
				data = strings.NewReader(testCSV)
			}
			_, _, err := r.Register(context.Background(), m, strings.NewReader("artifact"), data)
			wantCode(t, err, modelfleet.EINVALID)
			if r.Pending() != 0 {
				t.Error("an invalid registration queued an event")
			}
			if ms, _ := r.List(); len(ms) != 0 {
				t.Errorf("an invalid registration was stored: %+v", ms)
			}
		})
	}

	t.Run("rejected before reading the artifact", func(t *testing.T) {
		dir := t.TempDir()
		r := openTest(t, dir, Options{})
		m := valid
		m.Format = "pmml"
		_, _, err := r.Register(context.Background(), m, strings.NewReader("artifact"), nil)
		wantCode(t, err, modelfleet.EINVALID)
		if files := blobFiles(t, dir); len(files) != 0 {
			t.Errorf("blobs stored for a rejected model: %q", files)
		}
	})

	t.Run("caller's spec untouched", func(t *testing.T) {
		r := openTest(t, "", Options{})
		m := withValidation(valid)
		data := testCSV
		got, _ := register(t, r, m, "artifact", &data)
		if m.Validation.DataDigest != "" {
			t.Error("Register modified the caller's ValidationSpec")
		}
		if got.Validation.DataDigest != sha(testCSV) {
			t.Errorf("DataDigest = %q", got.Validation.DataDigest)
		}
	})
}

func TestRegisterTooLarge(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir, Options{MaxArtifactBytes: 10})
	_, _, err := r.Register(context.Background(), testModel("big", "1"), strings.NewReader("01234567890"), nil)
	wantCode(t, err, modelfleet.ETOOLARGE)
	if files := blobFiles(t, dir); len(files) != 0 {
		t.Errorf("oversized upload left files: %q", files)
	}
	register(t, r, testModel("fits", "1"), "0123456789", nil) // exactly the limit

	data := strings.Repeat("x", 11)
	_, _, err = r.Register(context.Background(), withValidation(testModel("bigdata", "1")), strings.NewReader("0"), strings.NewReader(data))
	wantCode(t, err, modelfleet.ETOOLARGE)
}

func TestRegisterCancelled(t *testing.T) {
	r := openTest(t, "", Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := r.Register(ctx, testModel("m", "1"), strings.NewReader("x"), nil)
	if err == nil {
		t.Fatal("Register with a cancelled context succeeded")
	}
}

func TestGetAndList(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir, Options{})
	for _, ref := range []string{"b:10", "b:2", "a:rc1", "b:1", "a:1", "b:beta", "b:010"} {
		name, version, _ := strings.Cut(ref, ":")
		register(t, r, testModel(name, version), "art-"+ref, nil)
	}
	ms, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.ModelRef.String())
	}
	want := []string{"a:1", "a:rc1", "b:1", "b:2", "b:010", "b:10", "b:beta"}
	if !slices.Equal(got, want) {
		t.Errorf("List order = %q, want %q", got, want)
	}

	_, err = r.Get("b", "3")
	wantCode(t, err, modelfleet.ENOTFOUND)
	if want := `model "b" version "3" not found`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	_, err = r.Get("b/1", "x")
	wantCode(t, err, modelfleet.EINVALID)

	// Records and their events survive a restart.
	r.Close()
	r2 := openTest(t, dir, Options{})
	m, err := r2.Get("b", "10")
	if err != nil || m.Digest != sha("art-b:10") {
		t.Fatalf("after reopen: Get = %+v, %v", m, err)
	}
	if r2.Pending() != 7 {
		t.Errorf("after reopen: Pending = %d, want 7", r2.Pending())
	}
}

func TestStrayTempFilesRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir, Options{})
	r.Close()
	stray := filepath.Join(dir, "blobs", "tmp", "blob-123")
	if err := os.WriteFile(stray, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	openTest(t, dir, Options{})
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("stray temp file still there after Open: %v", err)
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
