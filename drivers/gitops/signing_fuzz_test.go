package gitops

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// FuzzParseSigningKey reads any --gitops-signing-key file: an error, or
// one unprotected secret key that signs a commit its own public half
// verifies.
func FuzzParseSigningKey(f *testing.F) {
	// An ed25519 seed: small, so mutations reach its fields (an RSA seed
	// spends the executions on kilobytes of key material).
	e, err := openpgp.NewEntity("seed", "", "seed@modelfleet.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		f.Fatal(err)
	}
	var sec, pub bytes.Buffer
	w, _ := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	e.SerializePrivate(w, nil)
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	e.Serialize(w)
	w.Close()
	f.Add(sec.Bytes())
	f.Add(pub.Bytes())
	f.Add([]byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n-----END PGP PRIVATE KEY BLOCK-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseSigningKey(data)
		if err != nil {
			return
		}
		if k.PrivateKey == nil || k.PrivateKey.Encrypted {
			t.Fatal("accepted a key that cannot sign unattended")
		}
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, k, strings.NewReader("tree 0\n"), nil); err != nil {
			return // a key the library parses but cannot sign with fails at the first commit, with this error
		}
		if _, err := openpgp.CheckArmoredDetachedSignature(openpgp.EntityList{k}, strings.NewReader("tree 0\n"), &sig, nil); err != nil {
			t.Fatalf("its own signature does not verify: %v", err)
		}
	})
}
