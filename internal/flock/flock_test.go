//go:build unix

package flock

import (
	"path/filepath"
	"testing"
	"time"
)

// A second holder waits until the first releases.
func TestLockWaitsForTheHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := Lock(p, 0o600)
		if err != nil {
			t.Error(err)
		}
		close(got)
		u()
	}()
	select {
	case <-got:
		t.Fatal("a second Lock did not wait for the first to release")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	<-got
}
