package spec

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet"
)

// ABIVersion is the version of the WebAssembly workload ABI this release
// of modelfleet runs (docs/workloads.md, "ABI"). A module built for another
// one is refused at registration, in validation and at the site.
const ABIVersion = 1

// Module limits where a manifest is silent, and their bounds.
const (
	DefaultModuleMemoryMiB   = 64
	MaxModuleMemoryMiB       = 1024
	DefaultModuleCallTimeout = 100 * time.Millisecond
	MaxModuleCallTimeout     = 10 * time.Second
	// MaxModuleBytes bounds a module file: a workload's feature code
	// compiled from Go is a few megabytes.
	MaxModuleBytes = 32 << 20
)

// Module names the workload's code as a WebAssembly (WASI) module by the
// sha256 digest of its bytes, the ABI it was built for, and the limits each
// instance runs under: its linear memory and the time one call may take.
type Module struct {
	Digest      string   `yaml:"digest" json:"digest"` // "sha256:<64 hex>"
	ABI         int      `yaml:"abi" json:"abi"`
	MemoryMiB   int      `yaml:"memoryMiB,omitempty" json:"memoryMiB,omitempty"`     // default DefaultModuleMemoryMiB
	CallTimeout Duration `yaml:"callTimeout,omitempty" json:"callTimeout,omitempty"` // default DefaultModuleCallTimeout
}

func (m *Module) validate() error {
	if err := CheckDigest(m.Digest); err != nil {
		return fmt.Errorf("module.digest: %w", err)
	}
	if m.ABI != ABIVersion {
		return fmt.Errorf("module.abi %d is not supported: this release runs ABI %d", m.ABI, ABIVersion)
	}
	if m.MemoryMiB == 0 {
		m.MemoryMiB = DefaultModuleMemoryMiB
	}
	if m.MemoryMiB < 1 || m.MemoryMiB > MaxModuleMemoryMiB {
		return fmt.Errorf("module.memoryMiB %d is out of range 1..%d", m.MemoryMiB, MaxModuleMemoryMiB)
	}
	if m.CallTimeout == 0 {
		m.CallTimeout = Duration(DefaultModuleCallTimeout)
	}
	if d := time.Duration(m.CallTimeout); d < time.Millisecond || d > MaxModuleCallTimeout {
		return fmt.Errorf("module.callTimeout %s is out of range 1ms..%s", d, MaxModuleCallTimeout)
	}
	return nil
}

// CheckDigest accepts "sha256:" and 64 lowercase hex digits.
func CheckDigest(d string) error {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return fmt.Errorf("%q is not a digest: want \"sha256:\" and 64 lowercase hex digits", d)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("%q is not a digest: want \"sha256:\" and 64 lowercase hex digits", d)
	}
	return nil
}

// SetModuleDigest names the module of digest in the manifest doc: a
// manifest without module: gets one (digest, abi: 1, default limits); one
// whose module has no digest gets it; one naming another digest is refused
// (EINVALID) — it describes another module. The result is validated (and
// is doc itself, byte for byte, when it named digest already).
func SetModuleDigest(doc []byte, digest string) ([]byte, error) {
	bad := func(format string, args ...any) ([]byte, error) {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "workload manifest: "+format, args...)
	}
	if err := CheckDigest(digest); err != nil {
		return bad("module: %v", err)
	}
	if len(doc) > maxManifestBytes {
		return bad("larger than %d bytes", maxManifestBytes)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return bad("%v", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return bad("not a mapping")
	}
	top := root.Content[0]
	var module *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "module" {
			module = top.Content[i+1]
		}
	}
	out := doc
	switch {
	case module == nil:
		// Appended as text, so the author's comments and layout stay.
		out = append(bytes.TrimRight(append([]byte(nil), doc...), "\n"), "\n\nmodule:                # the workload's code (docs/workloads.md, \"ABI\")\n  digest: \""+digest+"\"\n  abi: 1\n"...)
	case module.Kind != yaml.MappingNode:
		return bad("module must be a mapping (digest, abi, memoryMiB, callTimeout)")
	default:
		var d *yaml.Node
		for i := 0; i+1 < len(module.Content); i += 2 {
			if module.Content[i].Value == "digest" {
				d = module.Content[i+1]
			}
		}
		switch {
		case d != nil && d.Value == digest:
		case d != nil && d.Value != "":
			return bad("module.digest %q is not the digest of this module, %s: the manifest describes another module", clip(d.Value), digest)
		default:
			if d == nil {
				d = &yaml.Node{Kind: yaml.ScalarNode}
				module.Content = append([]*yaml.Node{{Kind: yaml.ScalarNode, Value: "digest"}, d}, module.Content...)
			}
			d.Kind, d.Tag, d.Value, d.Style = yaml.ScalarNode, "!!str", digest, yaml.DoubleQuotedStyle
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			enc.SetIndent(2)
			if err := enc.Encode(&root); err != nil {
				return bad("%v", err)
			}
			out = buf.Bytes()
		}
	}
	if _, err := ParseManifest(out); err != nil {
		return nil, err
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// MaxImageRef bounds an image reference's length.
const MaxImageRef = 512

// CheckImage accepts an OCI image reference pinned by digest:
// "<registry>/<repository>[:tag]@sha256:<64 hex>", lowercase repository
// path components of letters, digits and separators (., _, -), a registry
// host that may carry a port. A tag alone is refused: it can move, and the
// release must pin what the sites run.
func CheckImage(ref string) error {
	if len(ref) > MaxImageRef {
		return fmt.Errorf("%d characters: at most %d", len(ref), MaxImageRef)
	}
	name, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return fmt.Errorf("%q is not pinned by digest: want <registry>/<repository>@sha256:<64 hex> (a tag can move)", ref)
	}
	if err := CheckDigest(digest); err != nil {
		return err
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag := name[i+1:]
		name = name[:i]
		if tag == "" || len(tag) > 128 || strings.IndexFunc(tag, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
		}) >= 0 {
			return fmt.Errorf("%q: malformed tag %q", ref, tag)
		}
	}
	parts := strings.Split(name, "/")
	if len(parts) < 2 {
		return fmt.Errorf("%q names no registry: want <registry>/<repository>@sha256:... (no implicit Docker Hub)", ref)
	}
	host := parts[0]
	if host == "" || strings.IndexFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':')
	}) >= 0 || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return fmt.Errorf("%q: %q is not a registry host", ref, host)
	}
	for _, p := range parts[1:] {
		if p == "" || strings.IndexFunc(p, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
		}) >= 0 || strings.ContainsAny(p[:1]+p[len(p)-1:], "._-") {
			return fmt.Errorf("%q: repository path component %q must be lowercase letters and digits, separated by '.', '_' or '-'", ref, p)
		}
	}
	return nil
}
