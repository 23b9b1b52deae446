package amlarc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// With release keys, the driver deploys only versions a trusted key signed,
// as an agent site loads them: an unsigned one is reported and never
// reaches Azure; a signed one deploys.
func TestDriverDeploysOnlySignedVersions(t *testing.T) {
	h := newHarness(t, nil)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	trust := &modelfleet.Trust{Keys: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}
	h.d.SetTrust(trust)
	v := version("1", 'a', 100)
	a, err := h.d.Apply(context.Background(), site, desired(site.ID, 1, map[string][]modelfleet.DesiredVersion{"m": {v}}))
	if err != nil || !strings.Contains(a.Models["m"].Error, "no signed release statement") {
		t.Fatalf("unsigned: %v %+v", err, a)
	}
	if h.ws.Count("PUT") != 0 {
		t.Fatal("an unsigned version reached Azure")
	}
	st := modelfleet.NewReleaseStatement(v.Digest, 10, modelfleet.ReleasePredicate{Model: "m", Version: "1", Format: v.Format})
	if v.Statement, err = modelfleet.SignStatement(st, []ed25519.PrivateKey{key}); err != nil {
		t.Fatal(err)
	}
	a, err = h.d.Apply(context.Background(), site, desired(site.ID, 2, map[string][]modelfleet.DesiredVersion{"m": {v}}))
	if err != nil || a.Models["m"].Error != "" {
		t.Fatalf("signed: %v %+v", err, a)
	}
}
