package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// packModelDir packs a model directory (an external model server's model
// repository) as the gzip-compressed tar archive an oip version's artifact
// is, into a temporary file it returns. The archive depends on the files'
// names, contents and executable bits only (sorted, no times, owners or
// links), so packing the same directory twice gives the same digest.
func packModelDir(dir string) (string, error) {
	out, err := os.CreateTemp("", "modelfleet-model-*.tar.gz")
	if err != nil {
		return "", err
	}
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX})
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file: a model directory holds files and directories only", p)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if fi.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: fi.Size(), Format: tar.FormatPAX}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	})
	for _, c := range []io.Closer{tw, gz, out} {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(out.Name())
		return "", fmt.Errorf("pack %s: %w", dir, err)
	}
	return out.Name(), nil
}
