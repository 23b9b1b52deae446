package agent

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func rawTar(t testing.TB, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

func TestUnpack(t *testing.T) {
	dir := t.TempDir()
	write := func(b []byte) string {
		p := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A model repository: directories, files, a gzip-compressed archive.
	good := tarball(t, map[string][]byte{"bearing/config.pbtxt": []byte("name: \"bearing\"\n"), "bearing/1/model.json": []byte("{}")})
	out := filepath.Join(dir, "out")
	if err := unpack(write(good), out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "bearing", "config.pbtxt")); err != nil || !strings.Contains(string(b), "bearing") {
		t.Errorf("unpacked config: %q %v", b, err)
	}
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"parent":   {rawTar(t, &tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}), "leaves the model directory"},
		"absolute": {rawTar(t, &tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}), "leaves the model directory"},
		"symlink":  {rawTar(t, &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}), "links and devices are refused"},
		"twice":    {rawTar(t, &tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}, &tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}), "exists"},
		"empty":    {rawTar(t), "empty"},
		"not tar":  {[]byte("tree\nversion=v3\n"), "not a tar archive"},
	} {
		out := filepath.Join(dir, "out-"+strings.ReplaceAll(name, " ", "-"))
		if err := unpack(write(c.data), out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
			t.Fatalf("%s: wrote outside the directory", name)
		}
	}
}

// FuzzUnpack: an archive holding anything unpacks inside its directory or
// fails, never writing elsewhere.
func FuzzUnpack(f *testing.F) {
	f.Add(rawTar(f, &tar.Header{Name: "m/1/model.json", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644}))
	f.Add(rawTar(f, &tar.Header{Name: "../x", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		p := filepath.Join(root, "a.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_ = unpack(p, filepath.Join(root, "out"))
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.Name() != "a.tar" && e.Name() != "out" {
				t.Fatalf("unpack wrote %q outside its directory", e.Name())
			}
		}
	})
}

func TestParseOIPServer(t *testing.T) {
	d, err := ParseOIPServer("triton=/opt/tritonserver/bin/tritonserver --model-repository={model_dir} --http-port={port}")
	if err != nil || d.Name != "triton" || d.Path != "/opt/tritonserver/bin/tritonserver" || len(d.Args) != 2 {
		t.Fatalf("%+v %v", d, err)
	}
	for _, bad := range []string{"triton", "triton=", "triton=bin/tritonserver", "=/bin/x", "t=/bin/x --home={home}"} {
		if _, err := ParseOIPServer(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	// Declared binaries must exist and be executable.
	if _, err := newServerHost([]OIPServer{{Name: "x", Path: "/nonexistent/server"}}, t.TempDir(), 0, testLog(t)); err == nil {
		t.Error("a missing binary was accepted")
	}
	plain := filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newServerHost([]OIPServer{{Name: "x", Path: plain}}, t.TempDir(), 0, testLog(t)); err == nil {
		t.Error("a file that is not executable was accepted")
	}
}
