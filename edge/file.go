package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// copyBuffers are hasDigest's read buffers: a site checks an artifact at
// every apply that lists it, and at fleet scale (one process simulating
// thousands of sites) a buffer each was a rollback's largest allocation at
// the sites.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// hasDigest reports whether the file at p exists with the given digest. A file
// that exists with other content (disk corruption, a hand copy) is removed so
// that it is downloaded again.
func hasDigest(p, digest string) (bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	h := sha256.New()
	buf := copyBuffers.Get().(*[]byte)
	// The struct hides the file's WriteTo, which would copy through a
	// buffer of its own, allocated at each call.
	_, err = io.CopyBuffer(h, struct{ io.Reader }{f}, *buf)
	copyBuffers.Put(buf)
	f.Close()
	if err != nil {
		return false, err
	}
	if "sha256:"+hex.EncodeToString(h.Sum(nil)) == digest {
		return true, nil
	}
	return false, os.Remove(p)
}

// WriteFileAtomic replaces p with data: temp file in the same directory,
// fsync, rename, fsync of the directory.
func WriteFileAtomic(p string, data []byte) error {
	if err := replaceFile(p, data); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// replaceFile is WriteFileAtomic but for the directory's fsync, which the
// caller does (once for several files of one directory).
func replaceFile(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
