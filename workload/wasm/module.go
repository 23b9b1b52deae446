package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// Fault reasons: why an instance was stopped.
const (
	FaultTimeout = "timeout" // a call ran past the call timeout
	FaultMemory  = "memory"  // the instance needed more than its memory limit
	FaultTrap    = "trap"    // a trap, a panic, an exit, or a result outside the ABI
)

// Fault is an instance stopped by the sandbox; the instance is closed.
type Fault struct {
	Reason  string // FaultTimeout, FaultMemory or FaultTrap
	Message string
}

func (f *Fault) Error() string { return "module " + f.Reason + ": " + f.Message }

// instantiateTimeout bounds starting an instance (the guest's runtime
// initialisation and modelfleet_init).
const instantiateTimeout = 5 * time.Second

// maxModules bounds the compiled versions an engine keeps; versions no
// instance uses are dropped first.
const maxModules = 16

// Engine loads and compiles modules. One per process: its compilation
// cache makes a version compile once however often it is loaded.
type Engine struct {
	cache wazero.CompilationCache
	mu    sync.Mutex
	mods  map[moduleKey]*Module
	order []moduleKey // oldest first
}

type moduleKey struct {
	digest  string
	pages   uint32
	timeout time.Duration
}

// NewEngine returns an engine; cacheDir keeps compiled code across
// restarts ("" keeps it in memory only).
func NewEngine(cacheDir string) (*Engine, error) {
	cache := wazero.NewCompilationCache()
	if cacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cacheDir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache %s: %w", cacheDir, err)
		}
	}
	return &Engine{cache: cache, mods: map[moduleKey]*Module{}}, nil
}

// Digest is the "sha256:<hex>" of a module's bytes.
func Digest(code []byte) string {
	sum := sha256.Sum256(code)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Module is one compiled version of a module under its limits.
type Module struct {
	digest  string
	rt      wazero.Runtime
	cm      wazero.CompiledModule
	limit   uint32 // memory pages
	timeout time.Duration
	live    atomic.Int64 // open instances
}

// Digest names the module's bytes.
func (m *Module) Digest() string { return m.digest }

// Load checks code against ms (its digest, size and ABI) and compiles it,
// or returns the version compiled already. Every failure is EINVALID and
// says what is wrong with the module.
func (e *Engine) Load(ctx context.Context, ms *spec.Module, code []byte) (*Module, error) {
	bad := func(format string, args ...any) (*Module, error) {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "workload module %s: "+format, append([]any{ms.Digest}, args...)...)
	}
	if len(code) > spec.MaxModuleBytes {
		return bad("is %d bytes, more than %d", len(code), spec.MaxModuleBytes)
	}
	if got := Digest(code); got != ms.Digest {
		return bad("the bytes have digest %s: the module was altered or is another one", got)
	}
	if ms.ABI != spec.ABIVersion {
		return bad("ABI %d is not supported: this release runs ABI %d", ms.ABI, spec.ABIVersion)
	}
	key := moduleKey{ms.Digest, uint32(ms.MemoryMiB) * 16, time.Duration(ms.CallTimeout)} // 64 KiB pages
	e.mu.Lock()
	defer e.mu.Unlock()
	if m, ok := e.mods[key]; ok {
		return m, nil
	}
	cfg := wazero.NewRuntimeConfig().WithCompilationCache(e.cache).WithMemoryLimitPages(key.pages).WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wasm: %w", err)
	}
	cm, err := rt.CompileModule(ctx, code)
	if err != nil {
		rt.Close(ctx)
		return bad("is not a valid WebAssembly module: %v", err)
	}
	if err := checkExports(cm); err != nil {
		rt.Close(ctx)
		return bad("does not implement ABI %d: %v", spec.ABIVersion, err)
	}
	for _, f := range cm.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != wasi_snapshot_preview1.ModuleName {
			rt.Close(ctx)
			return bad("imports %s.%s: a module may import only %s", mod, name, wasi_snapshot_preview1.ModuleName)
		}
	}
	for _, mem := range cm.ExportedMemories() {
		if mem.Min() > key.pages {
			rt.Close(ctx)
			return bad("needs %d MiB of memory to start, more than its limit of %d MiB", mem.Min()/16, ms.MemoryMiB)
		}
	}
	m := &Module{digest: ms.Digest, rt: rt, cm: cm, limit: key.pages, timeout: key.timeout}
	e.evictLocked(ctx)
	e.mods[key] = m
	e.order = append(e.order, key)
	return m, nil
}

// evictLocked drops unused versions while the engine holds too many.
func (e *Engine) evictLocked(ctx context.Context) {
	for i := 0; len(e.mods) >= maxModules && i < len(e.order); {
		k := e.order[i]
		if m := e.mods[k]; m.live.Load() == 0 {
			m.rt.Close(ctx)
			delete(e.mods, k)
			e.order = append(e.order[:i], e.order[i+1:]...)
			continue
		}
		i++
	}
}

// Close frees every module (and closes their instances).
func (e *Engine) Close(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, m := range e.mods {
		m.rt.Close(ctx)
		delete(e.mods, k)
	}
	e.order = nil
}

// abiExports are the functions ABI v1 requires, with their signatures.
var abiExports = map[string][2][]api.ValueType{
	ExportABI:     {nil, {api.ValueTypeI32}},
	ExportAlloc:   {{api.ValueTypeI32}, {api.ValueTypeI32}},
	ExportInit:    {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	ExportPrepare: {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	ExportDecide:  {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
}

func checkExports(cm wazero.CompiledModule) error {
	fns := cm.ExportedFunctions()
	var problems []string
	for _, name := range []string{ExportABI, ExportAlloc, ExportInit, ExportPrepare, ExportDecide} {
		want := abiExports[name]
		f, ok := fns[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no export %q", name))
		case !sameTypes(f.ParamTypes(), want[0]) || !sameTypes(f.ResultTypes(), want[1]):
			problems = append(problems, fmt.Sprintf("export %q has the wrong signature", name))
		}
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		problems = append(problems, `no exported "memory"`)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, ", "))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }
