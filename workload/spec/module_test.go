package spec

import (
	"bytes"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

const baseManifest = `# a comment that stays
apiVersion: modelfleet/v1
kind: Workload
name: line
version: "2"
model: m
input: {topics: ["f/{site}/+"], fields: [{name: x}]}
features: [{name: a}]
window: {size: 4}
output: {decisions: "d/{site}", deadLetter: "dl/{site}"}
`

func TestSetModuleDigest(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	// No module: one is appended, the rest of the document unchanged.
	out, err := SetModuleDigest([]byte(baseManifest), d1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte(baseManifest)) {
		t.Errorf("the document was rewritten:\n%s", out)
	}
	m, err := ParseManifest(out)
	if err != nil || m.Module == nil || m.Module.Digest != d1 || m.Module.ABI != ABIVersion || m.Module.MemoryMiB != DefaultModuleMemoryMiB {
		t.Fatalf("%+v %v", m.Module, err)
	}
	// The same digest again: unchanged, byte for byte.
	if again, err := SetModuleDigest(out, d1); err != nil || !bytes.Equal(again, out) {
		t.Errorf("naming the same digest changed the manifest: %v\n%s", err, again)
	}
	// Another digest: refused, naming both.
	if _, err := SetModuleDigest(out, d2); err == nil || !strings.Contains(err.Error(), d2) || modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("another module's digest: %v", err)
	}
	// A module block without a digest keeps its limits and gets it.
	out, err = SetModuleDigest([]byte(baseManifest+"module:\n  abi: 1\n  memoryMiB: 32\n"), d2)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ParseManifest(out); err != nil || m.Module.Digest != d2 || m.Module.MemoryMiB != 32 {
		t.Fatalf("%+v %v\n%s", m.Module, err, out)
	}
	for _, bad := range []string{baseManifest + "module: 3\n", "- a\n", baseManifest + "module: {abi: 2}\n"} {
		if _, err := SetModuleDigest([]byte(bad), d1); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
	if _, err := SetModuleDigest([]byte(baseManifest), "sha256:nothex"); err == nil {
		t.Error("a bad digest accepted")
	}
}

// FuzzSetModuleDigest: any document, an error or a manifest that parses
// and names the digest.
func FuzzSetModuleDigest(f *testing.F) {
	f.Add([]byte(baseManifest))
	f.Add([]byte(baseManifest + "module: {abi: 1}\n"))
	f.Add([]byte("module: [\n"))
	d := "sha256:" + strings.Repeat("a", 64)
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := SetModuleDigest(doc, d)
		if err != nil {
			return
		}
		m, err := ParseManifest(out)
		if err != nil || m.Module == nil || m.Module.Digest != d {
			t.Fatalf("SetModuleDigest returned a manifest that does not name the module: %v", err)
		}
	})
}

func TestCheckImage(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, ok := range []string{
		"registry.plant.example/line/features@" + d,
		"localhost:5000/features@" + d,
		"myacr.azurecr.io/team-a/line_features:1.2@" + d,
	} {
		if err := CheckImage(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for ref, want := range map[string]string{
		"registry.example/features:1.2":                "not pinned by digest",
		"features@" + d:                                "names no registry",
		"docker/features@" + d:                         "is not a registry host",
		"registry.example/Features@" + d:               "lowercase",
		"registry.example/features@sha256:abc":         "not a digest",
		"registry.example/features:t@g@" + d:           "not a digest",
		"registry.example//features@" + d:              "lowercase",
		"registry.example/features:" + "@" + d:         "malformed tag",
		"registry.example/" + strings.Repeat("a", 600): "at most",
	} {
		if err := CheckImage(ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", ref, err, want)
		}
	}
}

func FuzzCheckImage(f *testing.F) {
	f.Add("registry.plant.example/line/features@sha256:" + strings.Repeat("ab", 32))
	f.Add("localhost:5000/f:1@sha256:")
	f.Fuzz(func(t *testing.T, ref string) {
		if CheckImage(ref) == nil && (!strings.Contains(ref, "@sha256:") || len(ref) > MaxImageRef) {
			t.Fatalf("accepted %q", ref)
		}
	})
}

func TestManifestImage(t *testing.T) {
	img := "registry.plant.example/line@sha256:" + strings.Repeat("ab", 32)
	m, err := ParseManifest([]byte(baseManifest + "image: " + img + "\n"))
	if err != nil || m.Image != img {
		t.Fatalf("%q %v", m.Image, err)
	}
	if _, err := ParseManifest([]byte(baseManifest + "image: registry.plant.example/line:latest\n")); err == nil || !strings.Contains(err.Error(), "pinned by digest") {
		t.Errorf("a tag: %v", err)
	}
	both := baseManifest + "image: " + img + "\nmodule: {digest: \"sha256:" + strings.Repeat("1", 64) + "\", abi: 1}\n"
	if _, err := ParseManifest([]byte(both)); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("module and image: %v", err)
	}
}
