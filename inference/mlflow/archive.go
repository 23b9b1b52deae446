// Package mlflow reads MLflow model packages: a directory holding an MLmodel
// file, packed into one deterministic tar archive so that the package, like
// every other model artifact, is one file content-addressed by its sha256.
// It packs (Pack, PackDir), opens an archive (Open) with every entry checked,
// and parses MLmodel, its signature and its input example. It runs no
// Python: what the package's flavours mean is inference's business.
package mlflow

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of a package, checked when packing and when opening.
const (
	MaxArchiveBytes = 512 << 20 // the archive (the worker's download limit)
	MaxFileBytes    = 256 << 20 // one file in it
	MaxEntries      = 1000      // files in it
	MaxNameBytes    = 255       // one file's path inside the package
)

// MLmodelFile is the file that makes a directory an MLflow model.
const MLmodelFile = "MLmodel"

// File is one regular file of a package, named by its slash-separated path
// inside the package.
type File struct {
	Name string
	Data []byte
}

// PackDir packs the MLflow model directory dir into w (see Pack). Only
// regular files and directories may be in it: a symbolic link, device or
// socket is refused, naming it, since what it points to is not part of
// the model.
func PackDir(dir string, w io.Writer) error {
	files, err := readDir(dir)
	if err != nil {
		return err
	}
	if err := Pack(files, w); err != nil {
		return fmt.Errorf("model directory %s: %w", dir, err)
	}
	return nil
}

// ArchiveDir is PackDir for any model directory (an external model
// server's model repository): the same archive, without requiring MLmodel.
func ArchiveDir(dir string, w io.Writer) error {
	files, err := readDir(dir)
	if err != nil {
		return err
	}
	if err := Archive(files, w); err != nil {
		return fmt.Errorf("model directory %s: %w", dir, err)
	}
	return nil
}

// readDir reads the regular files under dir, bounded as Pack bounds them.
func readDir(dir string) ([]File, error) {
	var files []File
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("model directory %s: %q is a symbolic link: copy the file it points to into the model directory", dir, name)
		case !d.Type().IsRegular():
			return fmt.Errorf("model directory %s: %q is not a regular file", dir, name)
		}
		if len(files) == MaxEntries {
			return fmt.Errorf("model directory %s: more than %d files", dir, MaxEntries)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > MaxFileBytes {
			return fmt.Errorf("model directory %s: %q is %d bytes, more than %d", dir, name, info.Size(), MaxFileBytes)
		}
		if total += info.Size(); total > MaxArchiveBytes {
			return fmt.Errorf("model directory %s: its files hold more than %d bytes", dir, MaxArchiveBytes)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, File{Name: name, Data: data})
		return nil
	})
	return files, err
}

// epoch is every entry's modification time: the archive's bytes depend on
// the files' names and contents only.
var epoch = time.Unix(0, 0).UTC()

// Pack writes files as a tar archive whose bytes depend on the files' names
// and contents alone: entries sorted by name, regular files only, mode 0644,
// owner 0, times zero. The same package therefore always has the same digest,
// wherever and whenever it is packed. One of the files must be MLmodel.
func Pack(files []File, w io.Writer) error {
	if !slices.ContainsFunc(files, func(f File) bool { return f.Name == MLmodelFile }) {
		return fmt.Errorf("no %s file at its top: not an MLflow model directory", MLmodelFile)
	}
	return Archive(files, w)
}

// Archive is Pack for any set of files: the same deterministic archive,
// without requiring MLmodel (an external model server's model directory).
func Archive(files []File, w io.Writer) error {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	if len(files) > MaxEntries {
		return fmt.Errorf("more than %d files", MaxEntries)
	}
	var total int64
	for i, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if i > 0 && files[i-1].Name == f.Name {
			return fmt.Errorf("%q appears twice", f.Name)
		}
		if len(f.Data) > MaxFileBytes {
			return fmt.Errorf("%q is %d bytes, more than %d", f.Name, len(f.Data), MaxFileBytes)
		}
		total += int64(len(f.Data))
	}
	if total > MaxArchiveBytes {
		return fmt.Errorf("its files hold more than %d bytes", MaxArchiveBytes)
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: 0o644, Size: int64(len(f.Data)),
			ModTime: epoch, Format: tar.FormatPAX}
		if len(f.Name) <= 100 {
			hdr.Format = tar.FormatUSTAR
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%q: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("%q: %w", f.Name, err)
		}
	}
	return tw.Close()
}

// checkName refuses a path that could name something outside the package
// or that two systems would read differently.
func checkName(name string) error {
	switch {
	case name == "" || len(name) > MaxNameBytes:
		return fmt.Errorf("file name %q: want 1 to %d bytes", clip(name), MaxNameBytes)
	case !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\\"):
		return fmt.Errorf("file name %q: not valid UTF-8, or holds a NUL or backslash", clip(name))
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("file name %q is absolute", clip(name))
	case slices.Contains(strings.Split(name, "/"), ".."):
		return fmt.Errorf("file name %q leaves the package (..)", clip(name))
	case path.Clean(name) != name || name == ".":
		return fmt.Errorf("file name %q is not a clean relative path", clip(name))
	}
	return nil
}

// tarMagic is where a POSIX (ustar) or GNU tar header says what it is.
const tarMagicOffset = 257

// IsArchive reports whether data starts like a tar archive (a ustar, PAX or
// GNU header), which is how an MLflow package is recognised by its content.
func IsArchive(data []byte) bool {
	if len(data) < 512 {
		return false
	}
	magic := data[tarMagicOffset : tarMagicOffset+6]
	return bytes.Equal(magic, []byte("ustar\x00")) || bytes.Equal(magic, []byte("ustar "))
}

// Package is an opened MLflow package: its files by name.
type Package struct {
	files map[string][]byte
	names []string
}

// Open reads a package archive. Every entry is checked: regular files only
// (directory entries are skipped), relative clean paths without "..", no
// name twice, at most MaxEntries files of at most MaxFileBytes each, and an
// archive that ends where tar says it ends (two zero blocks), so a
// truncated archive is an error naming the file it cut, never a package
// with files missing. MLmodel must be one of the files.
func Open(data []byte) (*Package, error) {
	if len(data) > MaxArchiveBytes {
		return nil, fmt.Errorf("mlflow package: %d bytes, more than %d", len(data), MaxArchiveBytes)
	}
	if !IsArchive(data) {
		return nil, errors.New("mlflow package: not a tar archive")
	}
	p := &Package{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(data))
	last := "its first entry"
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("mlflow package: after %s: %v (truncated or corrupt archive)", last, err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := checkName(strings.TrimSuffix(hdr.Name, "/")); err != nil {
				return nil, fmt.Errorf("mlflow package: %w", err)
			}
			continue
		case tar.TypeReg:
		case tar.TypeSymlink, tar.TypeLink:
			return nil, fmt.Errorf("mlflow package: %q is a link: only regular files are allowed", clip(hdr.Name))
		default:
			return nil, fmt.Errorf("mlflow package: %q is not a regular file (tar type %q)", clip(hdr.Name), hdr.Typeflag)
		}
		if err := checkName(hdr.Name); err != nil {
			return nil, fmt.Errorf("mlflow package: %w", err)
		}
		if _, dup := p.files[hdr.Name]; dup {
			return nil, fmt.Errorf("mlflow package: %q appears twice", hdr.Name)
		}
		if len(p.names) == MaxEntries {
			return nil, fmt.Errorf("mlflow package: more than %d files", MaxEntries)
		}
		switch {
		case hdr.Size < 0 || hdr.Size > MaxFileBytes:
			return nil, fmt.Errorf("mlflow package: %q: size %d is out of range (at most %d bytes)", hdr.Name, hdr.Size, MaxFileBytes)
		case hdr.Size > int64(len(data)):
			return nil, fmt.Errorf("mlflow package: %q: %d bytes, but the archive ends before them (truncated archive)", hdr.Name, hdr.Size)
		}
		b := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			return nil, fmt.Errorf("mlflow package: %q: %v (truncated archive)", hdr.Name, err)
		}
		p.files[hdr.Name] = b
		p.names = append(p.names, hdr.Name)
		last = fmt.Sprintf("%q", hdr.Name)
	}
	if len(data) < 1024 || !allZero(data[len(data)-1024:]) {
		return nil, fmt.Errorf("mlflow package: the archive ends after %s without tar's end marker (truncated archive)", last)
	}
	if _, ok := p.files[MLmodelFile]; !ok {
		return nil, fmt.Errorf("mlflow package: no %s file at its top: the archive is not an MLflow model", MLmodelFile)
	}
	return p, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Names lists the package's files in archive order.
func (p *Package) Names() []string { return slices.Clone(p.names) }

// File returns the file at name, a path relative to the package's top
// (as MLmodel's keys give them).
func (p *Package) File(name string) ([]byte, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if err := checkName(clean); err != nil {
		return nil, err
	}
	b, ok := p.files[clean]
	if !ok {
		return nil, fmt.Errorf("%q is not in the package", name)
	}
	return b, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
