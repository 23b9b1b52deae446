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
