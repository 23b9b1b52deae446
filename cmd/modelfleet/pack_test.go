package main

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPackModelDir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"bearing/config.pbtxt": "name: \"bearing\"\n", "bearing/1/model.json": "{}", "README": "x"}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digest := func() [32]byte {
		p, err := packModelDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	first := digest()
	// `model pack --format oip` prints the digest register uploads (and an
	// Azure ML triton_model version must carry).
	if d, err := archiveTo(dir, filepath.Join(t.TempDir(), "repo.tar")); err != nil || d != fmt.Sprintf("sha256:%x", first) {
		t.Errorf("model pack --format oip: %s, %v; register packs sha256:%x", d, err, first)
	}
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "README"), later, later)
	if digest() != first {
		t.Error("packing the same directory again gives another archive")
	}
	p, err := packModelDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	f, _ := os.Open(p)
	defer f.Close()
	tr := tar.NewReader(f)
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			got[h.Name] = string(b)
		}
	}
	for name, content := range files {
		if got[name] != content {
			t.Errorf("%s = %q, want %q", name, got[name], content)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := packModelDir(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a link in the directory: %v", err)
	}
}
