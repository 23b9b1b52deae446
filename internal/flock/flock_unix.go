//go:build unix

// Package flock takes exclusive advisory locks on files, so that processes
// sharing a file take turns. A lock dies with its process: a crash cannot
// leave one held.
package flock

import (
	"os"
	"syscall"
)

// Lock takes an exclusive lock on path (created with perm if missing),
// waiting for it, and returns its release.
func Lock(path string, perm os.FileMode) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, perm)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
