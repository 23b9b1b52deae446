package wasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu sync.Mutex
	built   = map[string][]byte{}
)

// BuildModule builds the Go package at dir (relative to this package) as a
// module with the standard toolchain, once per test binary.
func BuildModule(tb testing.TB, dir string) []byte {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[dir]; ok {
		return b
	}
	out := filepath.Join(tb.TempDir(), "m.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, dir)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building %s: %v\n%s", dir, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	built[dir] = b
	return b
}
