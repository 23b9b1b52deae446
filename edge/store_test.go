package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// files lists every regular file under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openStore(t *testing.T, dir string, keep int) *Store {
	t.Helper()
	s, err := OpenStore(dir, keep, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInstallDigestMismatchInstallsNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	req := deployReq("bearing-failure", "1", fakeArtifact(0, 1, 2, 3))
	f := &fetcher{data: fakeArtifact(0, 9, 9, 9)} // not what the digest names
	_, err := s.Install(context.Background(), req, f.fetch)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Install = %v, want ErrDigestMismatch", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("files after failed install = %q, want none", got)
	}
}

func TestInstallFetchErrorInstallsNothing(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	data := fakeArtifact(0, 1, 2, 3)
	half := func(_ context.Context, w io.Writer) error {
		w.Write(data[:len(data)/2])
		return errors.New("connection reset")
	}
	if _, err := s.Install(context.Background(), deployReq("m", "1", data), half); err == nil {
		t.Fatal("Install succeeded after a failed fetch")
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("files after failed fetch = %q, want none", got)
	}
}

func TestInstallIsIdempotentAndRepairs(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	data := fakeArtifact(0, 1, 2, 3)
	req := deployReq("m", "1", data)
	f := &fetcher{data: data}
	p, err := s.Install(context.Background(), req, f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "models", "m", "1", req.Digest[len("sha256:"):]+".model"); p != want {
		t.Errorf("path = %q, want %q", p, want)
	}
	if _, err := s.Install(context.Background(), req, f.fetch); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("fetches after two installs = %d, want 1", n)
	}
	// A file damaged on disk is not "already present".
	if err := os.WriteFile(p, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(context.Background(), req, f.fetch); err != nil {
		t.Fatal(err)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("fetches after repairing = %d, want 2", n)
	}
	if b, _ := os.ReadFile(p); string(b) != string(data) {
		t.Errorf("repaired file = %q, want %q", b, data)
	}
}

func TestInstallPrunesOldVersionsButNotServed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 3)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	var paths []string
	for i, v := range []string{"1", "2", "3", "4", "5"} {
		data := fakeArtifact(float64(i), 1, 2, 3)
		req := deployReq("m", v, data)
		f := &fetcher{data: data}
		p, err := s.Install(ctx, req, f.fetch)
		if err != nil {
			t.Fatal(err)
		}
		// Distinct modification times: pruning must not depend on the
		// file system's timestamp resolution.
		mt := t0.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, mt, mt)
		paths = append(paths, p)
		if v == "1" {
			if err := s.Put(StateEntry{ModelRef: req.Model, Digest: req.Digest, Format: req.Format, Features: req.Features}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Served v1 stays, plus the two newest.
	for i, p := range paths {
		_, err := os.Stat(p)
		wantKept := i == 0 || i >= 3
		if kept := err == nil; kept != wantKept {
			t.Errorf("version %d kept = %v, want %v", i+1, kept, wantKept)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "models", "m", "2")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty version dir 2 not removed: %v", err)
	}
}

func TestPutIsAtomicAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 0)
	data := fakeArtifact(0, 1, 2, 3)
	req := deployReq("bearing-failure", "1", data)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	e := StateEntry{ModelRef: req.Model, Digest: req.Digest, Format: req.Format, Features: req.Features, LoadedAt: at}
	if err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	if got := files(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Errorf("files = %q, want only state.json (no temp left)", got)
	}
	// A crash mid-write leaves a temp file; the next open removes it and
	// still reads the last complete state.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte(`{"models":[`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "models", "m", "1"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "models", "m", "1", ".tmp-456"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, 0)
	if got := files(t, dir); !slices.Equal(got, []string{"state.json"}) {
		t.Errorf("files after reopen = %q, want only state.json", got)
	}
	st := s2.State()
	if len(st.Models) != 1 {
		t.Fatalf("state after reopen = %+v, want one model", st)
	}
	got := st.Models[0]
	if got.ModelRef != req.Model || got.Digest != req.Digest || !got.LoadedAt.Equal(at) || !slices.Equal(got.Features, testFeatures) {
		t.Errorf("state entry = %+v", got)
	}
	if want := "models/bearing-failure/1/" + req.Digest[len("sha256:"):] + ".model"; got.Path != want {
		t.Errorf("path = %q, want %q", got.Path, want)
	}
	// The file itself is what the brief describes, readable by a person.
	var raw map[string][]map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "version", "digest", "format", "features", "path", "loadedAt"} {
		if _, ok := raw["models"][0][k]; !ok {
			t.Errorf("state.json entry has no %q: %s", k, b)
		}
	}
}

func TestOpenStoreRejectsCorruptState(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir, 0, nil); err == nil {
		t.Fatal("OpenStore accepted a corrupt state.json")
	}
}
