package gitops_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/modelfleet/modelfleet/drivers/gitops"
)

func armored(t *testing.T, e *openpgp.Entity, secret bool) string {
	t.Helper()
	var buf bytes.Buffer
	typ := openpgp.PublicKeyType
	if secret {
		typ = openpgp.PrivateKeyType
	}
	w, err := armor.Encode(&buf, typ, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret {
		err = e.SerializePrivate(w, nil)
	} else {
		err = e.Serialize(w)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.String()
}

// With a signing key every commit carries an OpenPGP signature that the
// key's armored public half — what Flux's GitRepository verify secret
// holds — verifies, and another key's does not.
func TestCommitsAreSigned(t *testing.T) {
	e, err := openpgp.NewEntity("modelfleet gitops", "", "gitops@modelfleet.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.asc")
	if err := os.WriteFile(path, []byte(armored(t, e, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := gitops.LoadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	url := remote(t)
	d := newDriver(t, url, func(c *gitops.Config) { c.SignKey = key })
	s := site("plant-a")
	if _, err := d.Apply(context.Background(), s, desired(s.ID, 1, v("1", 'a', 100))); err != nil {
		t.Fatal(err)
	}
	cs := history(t, url)
	if len(cs) == 0 || cs[0].PGPSignature == "" {
		t.Fatal("the commit is not signed")
	}
	if _, err := cs[0].Verify(armored(t, e, false)); err != nil {
		t.Fatalf("the signing key's public half does not verify the commit: %v", err)
	}
	other, _ := openpgp.NewEntity("someone", "", "x@example.com", nil)
	if _, err := cs[0].Verify(armored(t, other, false)); err == nil {
		t.Fatal("another key verifies the commit")
	}

	// Unfit key files are refused, saying why.
	for name, body := range map[string]string{
		"public only": armored(t, e, false),
		"not a key":   "hello",
	} {
		p := filepath.Join(t.TempDir(), "k.asc")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := gitops.LoadSigningKey(p); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "public only" && !strings.Contains(err.Error(), "public key only") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
