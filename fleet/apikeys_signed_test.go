package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"reflect"
	"testing"

	"github.com/modelfleet/modelfleet"
)

type testSigner struct {
	key   ed25519.PrivateKey
	trust modelfleet.Trust
}

func (s testSigner) SignAPIKeys(st modelfleet.APIKeysStatement) (*modelfleet.Envelope, error) {
	return modelfleet.SignAPIKeysStatement(st, []ed25519.PrivateKey{s.key})
}

func (s testSigner) VerifyAPIKeys(env *modelfleet.Envelope, site string) (modelfleet.APIKeysStatement, error) {
	return s.trust.VerifyAPIKeys(env, site)
}

// With a signer, every key set SetAPIKeys writes is signed for its site,
// and a change starts from the set the site's statement signed: hashes
// written to the store behind the gateway's back (or unsigned ones from
// before) are not signed along with the scope set now.
func TestSetAPIKeysSigns(t *testing.T) {
	d := mustOpen(t)
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	trust := modelfleet.Trust{Keys: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}
	for _, id := range []string{"s1", "s2"} {
		if _, err := d.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id)}); err != nil {
			t.Fatal(err)
		}
	}
	// Unsigned keys from before the gateway signed.
	if _, err := d.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "old", SHA256: []string{hashOf("0")}}); err != nil {
		t.Fatal(err)
	}
	d.SetAPIKeysSigner(testSigner{key: key, trust: trust})
	check := func(site string, want *modelfleet.APIKeys) {
		t.Helper()
		ds := desired(t, d, site)
		if !reflect.DeepEqual(ds.APIKeys, want) {
			t.Fatalf("%s: keys %+v, want %+v", site, ds.APIKeys, want)
		}
		st, err := trust.VerifyAPIKeys(ds.APIKeysStatement, site)
		if err != nil || !st.Vouches(want) {
			t.Fatalf("%s: statement %+v (%v) does not vouch for %+v", site, st, err, want)
		}
	}
	if _, err := d.SetAPIKeys(modelfleet.APIKeysRequest{All: true, Model: "a", SHA256: []string{hashOf("a")}}); err != nil {
		t.Fatal(err)
	}
	onlyA := &modelfleet.APIKeys{Models: map[string]modelfleet.KeyHashes{"a": {SHA256: []string{hashOf("a")}}}}
	check("s1", onlyA) // the unsigned "old" scope is not signed along
	check("s2", onlyA)

	// An attacker with the store adds a hash; the next legitimate change
	// does not sign it.
	if _, err := d.update([]string{"s1"}, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		ds.APIKeys = ds.APIKeys.With("a", []string{hashOf("a"), hashOf("e")})
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "b", SHA256: []string{hashOf("b")}}); err != nil {
		t.Fatal(err)
	}
	check("s1", onlyA.With("b", []string{hashOf("b")}))

	// A set that is already the one signed is left alone; a clear is signed.
	if res, err := d.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s2"}, Model: "a", SHA256: []string{hashOf("a")}}); err != nil || res.Changed != 0 {
		t.Fatalf("unchanged: %+v, %v", res, err)
	}
	if _, err := d.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s2"}, Model: "a"}); err != nil {
		t.Fatal(err)
	}
	check("s2", nil)
}
