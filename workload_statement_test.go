package modelfleet

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func workloadRecord(version, manifest string) WorkloadRecord {
	sum := sha256.Sum256([]byte(manifest))
	return WorkloadRecord{Name: "line", Version: version, Model: "m", Features: []string{"a"}, Digest: "sha256:" + hex.EncodeToString(sum[:]), Manifest: manifest}
}

func TestVouchWorkload(t *testing.T) {
	key, rogue := mustKey(t), mustKey(t)
	trust := trustOf(key)
	rec := workloadRecord("3", "name: line\nversion: \"3\"\n")
	signed := func(k ed25519.PrivateKey) DesiredWorkload {
		env, err := SignWorkloadStatement(NewWorkloadStatement(rec, "release/m/workload/line/3", time.Now()), []ed25519.PrivateKey{k})
		if err != nil {
			t.Fatal(err)
		}
		dw := rec.Desired()
		dw.Statement = env
		return dw
	}
	// Carried by a model release: the model version's statement names it.
	carried := func(w *SignedWorkload) Desired {
		st := NewReleaseStatement(testDigest, 10, ReleasePredicate{Model: "m", Version: "2", Format: "lightgbm", Features: []string{"a"}, Workload: w})
		env, _ := SignStatement(st, []ed25519.PrivateKey{key})
		return Desired{Models: map[string]DesiredModel{"m": {Versions: []DesiredVersion{{Version: "2", Digest: testDigest, Size: 10, Format: "lightgbm", Features: []string{"a"}, Weight: 100, Statement: env}}}}}
	}
	named := &SignedWorkload{Name: "line", Version: "3", ManifestDigest: rec.Digest}
	if err := trust.VouchWorkload(Desired{}, "line", signed(key)); err != nil {
		t.Fatalf("a signed workload is refused: %v", err)
	}
	if err := trust.VouchWorkload(carried(named), "line", rec.Desired()); err != nil {
		t.Fatalf("a workload its model version's statement names is refused: %v", err)
	}
	tampered := signed(key)
	tampered.Manifest += "# more\n"
	other := *named
	other.Version = "4"
	for name, c := range map[string]struct {
		ds Desired
		dw DesiredWorkload
	}{
		"unsigned":                {Desired{}, rec.Desired()},
		"untrusted key":           {Desired{}, signed(rogue)},
		"tampered manifest":       {Desired{}, tampered},
		"another workload named":  {carried(&other), rec.Desired()},
		"model names no workload": {carried(nil), rec.Desired()},
	} {
		t.Run(name, func(t *testing.T) {
			err := trust.VouchWorkload(c.ds, "line", c.dw)
			if err == nil || ErrorCode(err) != EUNAUTHORIZED || !strings.Contains(err.Error(), "line:3") {
				t.Fatalf("got %v, want refused", err)
			}
		})
	}
}
