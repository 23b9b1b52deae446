//go:build unix

package auth

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on path (created 0600) and
// returns its release: CLI processes refreshing one login take turns,
// so a rotated refresh token is spent once.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
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
