package spec

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
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
