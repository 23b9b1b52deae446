package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelfleet/modelfleet"
)

// BlobStore keeps content-addressed blobs under dir/blobs/sha256/<hex>, like
// an OCI layout. A blob is written to dir/blobs/tmp while it is hashed,
// fsynced, then renamed under its digest: rename is atomic on one file
// system, so a crash leaves at most a stray temp file (removed by Open) and
// never a partial blob under a digest. The registry keeps its artifacts in
// one; the gateway keeps its mirror of artifacts sites cannot fetch in
// another.
type BlobStore struct {
	dir string // dir/blobs
}

// OpenBlobStore opens (creating) the store under dir/blobs.
func OpenBlobStore(dir string) (*BlobStore, error) {
	s := &BlobStore{dir: filepath.Join(dir, "blobs")}
	for _, d := range []string{s.sha256Dir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("registry: create %s: %w", d, err)
		}
	}
	// Temp files left by a crash belong to no digest; nothing refers to them.
	tmps, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("registry: list temp blobs: %w", err)
	}
	for _, e := range tmps {
		_ = os.Remove(filepath.Join(s.tmpDir(), e.Name()))
	}
	return s, nil
}

func (s *BlobStore) sha256Dir() string { return filepath.Join(s.dir, "sha256") }
func (s *BlobStore) tmpDir() string    { return filepath.Join(s.dir, "tmp") }

// path returns the file of a digest already checked by ValidDigest.
func (s *BlobStore) path(digest string) string {
	return filepath.Join(s.sha256Dir(), strings.TrimPrefix(digest, "sha256:"))
}

// put streams r into the store and returns its digest and size. what names
// the blob in errors ("artifact", "validation data"). A blob larger than max
// bytes is refused with ETOOLARGE and nothing is kept.
func (s *BlobStore) put(ctx context.Context, what string, r io.Reader, max int64) (digest string, size int64, err error) {
	return s.putExpect(ctx, what, r, max, "")
}

// Put stores r, which must hash to want: a body that does not is refused
// with EINVALID and nothing is kept.
func (s *BlobStore) Put(ctx context.Context, what string, r io.Reader, max int64, want string) error {
	if !modelfleet.ValidDigest(want) {
		return modelfleet.Errorf(modelfleet.EINVALID, "%s digest %q is invalid: want sha256:<64 hex digits>", what, want)
	}
	_, _, err := s.putExpect(ctx, what, r, max, want)
	return err
}

// Open returns the blob of digest and its size (ENOTFOUND if absent).
func (s *BlobStore) Open(digest string) (*os.File, int64, error) { return s.open(digest) }

func (s *BlobStore) putExpect(ctx context.Context, what string, r io.Reader, max int64, want string) (digest string, size int64, err error) {
	f, err := os.CreateTemp(s.tmpDir(), "blob-*")
	if err != nil {
		return "", 0, fmt.Errorf("registry: store %s: %w", what, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	h := sha256.New()
	// Read one byte past the limit to tell "exactly max" from "more than max".
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, max+1))
	if err != nil {
		var me *modelfleet.Error
		if errors.As(err, &me) || ctx.Err() != nil {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("registry: store %s: %w", what, err)
	}
	if n > max {
		return "", 0, modelfleet.Errorf(modelfleet.ETOOLARGE, "%s is larger than the limit of %d bytes", what, max)
	}
	digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		return "", 0, modelfleet.Errorf(modelfleet.EINVALID, "%s hashes to %s, not %s", what, digest, want)
	}
	final := s.path(digest)

	// Same bytes, same digest: a blob already present is the one we would
	// write, so it is stored once and this copy is dropped unsynced.
	if _, err := os.Stat(final); err == nil {
		return digest, n, nil
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("registry: store %s: sync: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("registry: store %s: close: %w", what, err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return "", 0, fmt.Errorf("registry: store %s: %w", what, err)
	}
	renamed = true
	// The rename itself is durable only once its directory is synced.
	if err := syncDir(s.sha256Dir()); err != nil {
		return "", 0, fmt.Errorf("registry: store %s: %w", what, err)
	}
	return digest, n, nil
}

// open returns the blob of digest and its size.
func (s *BlobStore) open(digest string) (*os.File, int64, error) {
	if !modelfleet.ValidDigest(digest) {
		return nil, 0, modelfleet.Errorf(modelfleet.EINVALID, "digest %q is invalid: want sha256:<64 hex digits>", digest)
	}
	f, err := os.Open(s.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, modelfleet.Errorf(modelfleet.ENOTFOUND, "blob %q not found", digest)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("registry: open blob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("registry: open blob: %w", err)
	}
	return f, fi.Size(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a long upload copy once the request is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
