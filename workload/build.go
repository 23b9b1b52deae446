package workload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/modelfleet/modelfleet/workload/wasm"
)

// BuildModule builds the Go package in dir (a main package written against
// the guest SDK, workload/wasm/guest) into a WebAssembly module at out with
// the standard toolchain, exactly as
//
//	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 go build -buildmode=c-shared -trimpath -o out ./dir
//
// (c-shared because the module is a library the site calls through its
// //go:wasmexport functions, not a program it runs). goTool is the go
// command ("" is "go" on PATH). The result is checked before it is kept:
// at most spec.MaxModuleBytes, and it must compile and export ABI v1. It
// returns the module's digest.
func BuildModule(ctx context.Context, goTool, dir, out string) (string, error) {
	if goTool == "" {
		goTool = "go"
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "workload module source %q is not a directory", dir)
	}
	pkg := dir
	if !filepath.IsAbs(pkg) && !strings.HasPrefix(pkg, ".") {
		pkg = "./" + pkg // a path, not an import path
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".module-*.wasm")
	if err != nil {
		return "", fmt.Errorf("workload: build module: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, goTool, "build", "-buildmode=c-shared", "-trimpath", "-o", tmp.Name(), pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var msg bytes.Buffer
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("workload: go build %s for wasip1/wasm: %w\n%s", dir, err, strings.TrimSpace(msg.String()))
	}
	code, err := os.ReadFile(tmp.Name())
	if err != nil {
		return "", fmt.Errorf("workload: build module: %w", err)
	}
	digest, err := CheckModule(ctx, code)
	if err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("workload: build module: %w", err)
	}
	return digest, nil
}

// CheckModule checks that code is a module this release can run (bounded,
// valid WebAssembly, ABI v1 exports and imports only WASI) and returns its
// digest. It does not run it.
func CheckModule(ctx context.Context, code []byte) (string, error) {
	digest := wasm.Digest(code)
	e, err := wasm.NewEngine("")
	if err != nil {
		return "", err
	}
	defer e.Close(context.Background())
	ms := spec.Module{Digest: digest, ABI: spec.ABIVersion, MemoryMiB: spec.MaxModuleMemoryMiB}
	if _, err := e.Load(ctx, &ms, code); err != nil {
		return "", err
	}
	return digest, nil
}
