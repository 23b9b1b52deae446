package app

import (
	"path/filepath"
	"sync"
	"testing"
)

// Gateway replicas starting at once on one empty PKI directory end up with
// one release key (and one control key): the key is created under a lock,
// looked for again under it, and renamed into place whole.
func TestReleaseKeyCreatedOnceAcrossConcurrentStarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "release-keys")
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := OpenReleaseKeys(dir, true)
			if errs[i] = err; err == nil {
				ids[i] = k.Trust().Keys[0].ID
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("start %d has key %s, start 0 %s", i, ids[i], ids[0])
		}
	}
	if paths, _ := filepath.Glob(filepath.Join(dir, "*.key")); len(paths) != 1 {
		t.Fatalf("%d keys in the directory, want 1", len(paths))
	}
}
