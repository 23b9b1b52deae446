package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDesiredFile reads a mounted desired-state file holding anything: an
// error or a desired state for this site, never a panic.
func FuzzDesiredFile(f *testing.F) {
	f.Add([]byte(`{"site":"s1","revision":3,"models":{"m":{"versions":[{"version":"1","digest":"sha256:00","weight":100}]}}}`))
	f.Add([]byte(`{"site":"s2","revision":1}`))
	f.Add([]byte(`{"site":"s1","revision":-1,"releaseKeys":{"payloadType":"x","payload":"AA==","signatures":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "desired.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := readDesiredFile(p, "s1")
		if err == nil && ds.Site != "s1" {
			t.Fatalf("took a desired state for site %q", ds.Site)
		}
	})
}

// FuzzLoadTrust reads a release keys file holding anything.
func FuzzLoadTrust(f *testing.F) {
	f.Add([]byte(`{"keys":[{"id":"ed25519:00","publicKey":"AAAA"}],"revoked":["x"],"serial":2}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), releaseKeysFile)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tr, err := LoadTrust(p)
		if err == nil && (tr == nil || len(tr.Keys) == 0) {
			t.Fatal("took a key file with no keys")
		}
	})
}
