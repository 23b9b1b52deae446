package agent

import (
	"testing"

	"github.com/modelfleet/modelfleet"
)

// FuzzDesiredFile decodes a mounted desired-state file holding anything
// (readDesiredFile's decoder; reading the file adds only the size bound,
// which TestSiteConvergesFromDesiredFile covers): an error or a desired
// state for this site whose splits validate, never a panic.
func FuzzDesiredFile(f *testing.F) {
	f.Add([]byte(`{"site":"s1","revision":3,"models":{"m":{"versions":[{"version":"1","digest":"sha256:00","weight":100}]}}}`))
	f.Add([]byte(`{"site":"s2","revision":1}`))
	f.Add([]byte(`{"site":"s1","revision":-1,"releaseKeys":{"payloadType":"x","payload":"AA==","signatures":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := parseDesired(data, "desired.json", "s1")
		if err != nil {
			return
		}
		if ds.Site != "s1" {
			t.Fatalf("took a desired state for site %q", ds.Site)
		}
		for name, dm := range ds.Models {
			if err := modelfleet.ValidateSplit(dm.Versions); err != nil {
				t.Fatalf("took model %q with a split that does not validate: %v", name, err)
			}
		}
	})
}

// FuzzLoadTrust decodes a release keys file holding anything (LoadTrust's
// decoder): an error, or a trust with keys.
func FuzzLoadTrust(f *testing.F) {
	f.Add([]byte(`{"keys":[{"id":"ed25519:00","publicKey":"AAAA"}],"revoked":["x"],"serial":2}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := parseTrust(data, releaseKeysFile)
		if err == nil && (tr == nil || len(tr.Keys) == 0) {
			t.Fatal("took a key file with no keys")
		}
	})
}
