package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
	"github.com/modelfleet/modelfleet/workload/wasm"
)

// FetchModule downloads the module of digest into w, failing unless the
// bytes hash to digest (registry.Client.Download does).
type FetchModule func(ctx context.Context, digest string, w io.Writer) error

// Modules are the WebAssembly modules a site runs: kept content-addressed
// on its disk (dir/sha256/<hex>), downloaded when missing, re-hashed every
// time one is read (a file altered on disk is refused, never run), and
// compiled once per version (the compiled code is cached in dir/compiled
// across restarts).
type Modules struct {
	dir    string
	fetch  FetchModule
	engine *wasm.Engine
}

// OpenModules opens (creating) the module cache in dir; fetch downloads a
// module the cache lacks (nil: none is downloaded).
func OpenModules(dir string, fetch FetchModule) (*Modules, error) {
	for _, d := range []string{filepath.Join(dir, "sha256"), filepath.Join(dir, "compiled")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("workload: module cache: %w", err)
		}
	}
	e, err := wasm.NewEngine(filepath.Join(dir, "compiled"))
	if err != nil {
		return nil, err
	}
	return &Modules{dir: dir, fetch: fetch, engine: e}, nil
}

// Close frees the compiled modules (and stops their instances).
func (ms *Modules) Close() { ms.engine.Close(context.Background()) }

// Program is the workload version of manifest m, whose code is the module
// m names: read from disk (or downloaded), checked against its digest,
// compiled once. It fails, changing nothing, with why: the module is
// missing and cannot be downloaded, was altered on disk, is not ABI v1.
func (ms *Modules) Program(ctx context.Context, m spec.Manifest) (Program, error) {
	if m.Module == nil {
		return Program{}, modelfleet.Errorf(modelfleet.EINVALID, "workload %s names no module", m.Ref())
	}
	// Errors name the module, not the workload: whoever reports them
	// names the workload version already.
	code, err := ms.read(ctx, m.Module.Digest)
	if err != nil {
		return Program{}, err
	}
	mod, err := ms.engine.Load(ctx, m.Module, code)
	if err != nil {
		return Program{}, err
	}
	p := Program{Manifest: m, Module: WasmModule(mod)}
	return p, p.Validate()
}

// Path is where the module of digest is kept.
func (ms *Modules) Path(digest string) string {
	return filepath.Join(ms.dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// read returns the bytes of digest from disk, re-hashed, or downloads them.
func (ms *Modules) read(ctx context.Context, digest string) ([]byte, error) {
	if err := spec.CheckDigest(digest); err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "module: %v", err)
	}
	p := ms.Path(digest)
	code, err := readBounded(p)
	switch {
	case err == nil:
		if got := wasm.Digest(code); got != digest {
			// Set aside, not deleted: someone changed a file on this
			// site's disk, and it is evidence. The next revision that
			// names the module downloads it again.
			aside := p + ".altered"
			_ = os.Rename(p, aside)
			return nil, modelfleet.Errorf(modelfleet.EINVALID, "module file %s on this site's disk hashes to %s, not %s: it was altered, refused (kept as %s)", p, got, digest, filepath.Base(aside))
		}
		return code, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("module %s: %w", digest, err)
	case ms.fetch == nil:
		return nil, modelfleet.Errorf(modelfleet.ENOTFOUND, "module %s is not on this site's disk (%s) and the site has nowhere to download it from", digest, p)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".download-*")
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", digest, err)
	}
	defer os.Remove(tmp.Name())
	lw := &limitWriter{w: tmp, n: spec.MaxModuleBytes}
	err = ms.fetch(ctx, digest, lw)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && lw.over {
		err = modelfleet.Errorf(modelfleet.ETOOLARGE, "more than %d bytes", spec.MaxModuleBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("download module %s: %w", digest, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return nil, fmt.Errorf("module %s: %w", digest, err)
	}
	return ms.read(ctx, digest) // re-read what is on disk: what runs is what is kept
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, spec.MaxModuleBytes+1))
	if err == nil && len(b) > spec.MaxModuleBytes {
		err = fmt.Errorf("%s is larger than %d bytes", p, spec.MaxModuleBytes)
	}
	return b, err
}

// limitWriter fails writes past n bytes.
type limitWriter struct {
	w    io.Writer
	n    int64
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		l.over = true
		return 0, modelfleet.Errorf(modelfleet.ETOOLARGE, "module is larger than %d bytes", spec.MaxModuleBytes)
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}
