package agent

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Bounds of a model directory archive.
const (
	// MaxUnpackedBytes bounds the files of an unpacked model directory.
	MaxUnpackedBytes = 8 << 30
	// maxArchiveEntries bounds its entries.
	maxArchiveEntries = 100_000
)

// unpack extracts the tar archive (gzip-compressed or not) at path into
// dir. Only regular files and directories are taken, each name must stay
// inside dir (no absolute paths, no ".."), and the total is bounded: an
// archive is data, and must not write anywhere else or fill the disk.
func unpack(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return fmt.Errorf("the archive is empty")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a tar archive (gzip-compressed or not): %w", err)
		}
		if n >= maxArchiveEntries {
			return fmt.Errorf("more than %d entries", maxArchiveEntries)
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) {
			if filepath.Clean(name) == "." {
				continue
			}
			return fmt.Errorf("entry %q leaves the model directory", hdr.Name)
		}
		dst := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if hdr.Size < 0 || total+hdr.Size > MaxUnpackedBytes {
				return fmt.Errorf("the files are larger than %d bytes", int64(MaxUnpackedBytes))
			}
			total += hdr.Size
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644|os.FileMode(hdr.Mode)&0o111)
			if err != nil {
				return err
			}
			_, err = io.CopyN(out, tr, hdr.Size)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q is not a regular file or directory (links and devices are refused)", hdr.Name)
		}
	}
}
