package gitops

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// maxSigningKey bounds the signing key file.
const maxSigningKey = 1 << 20

// LoadSigningKey reads the OpenPGP key the driver signs its commits with:
// an ASCII-armored secret key (`gpg --export-secret-keys --armor <id>`),
// one key, not protected by a passphrase (mount it as a Secret). Its public
// half (`gpg --export --armor <id>`) is what Flux's GitRepository verify
// secret holds.
func LoadSigningKey(path string) (*openpgp.Entity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gitops signing key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSigningKey+1))
	if err != nil {
		return nil, fmt.Errorf("gitops signing key %s: %w", path, err)
	}
	if len(b) > maxSigningKey {
		return nil, fmt.Errorf("gitops signing key %s: larger than %d bytes", path, maxSigningKey)
	}
	return parseSigningKey(b)
}

func parseSigningKey(b []byte) (_ *openpgp.Entity, err error) {
	// The OpenPGP packet reader panics on some malformed packets (found by
	// FuzzParseSigningKey; seed kept in testdata/fuzz): a bad key file is
	// an error, never a crash of the worker.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gitops signing key: not an armored OpenPGP key: malformed packet (%v)", r)
		}
	}()
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gitops signing key: not an armored OpenPGP key: %v", err)
	}
	if len(ring) != 1 {
		return nil, fmt.Errorf("gitops signing key: %d keys, want one", len(ring))
	}
	e := ring[0]
	if e.PrivateKey == nil {
		return nil, fmt.Errorf("gitops signing key: a public key only: export the secret key (gpg --export-secret-keys --armor)")
	}
	if e.PrivateKey.Encrypted {
		return nil, fmt.Errorf("gitops signing key: protected by a passphrase: export it without one and mount it as a Secret")
	}
	return e, nil
}
