package modelfleet

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// Release-signing keys are ed25519 or ECDSA P-256 (what a hardware or
// cloud key store, Azure Key Vault among them, signs with). An ed25519
// TrustedKey holds the 32-byte key; an ECDSA one the PKIX DER of its public
// key, under an ID that names the algorithm.

// ecdsaKeyIDPrefix starts the ID of an ECDSA P-256 key.
const ecdsaKeyIDPrefix = "ecdsa-p256:"

// TrustedKeyOf returns the TrustedKey of an ed25519 or ECDSA P-256 public
// key.
func TrustedKeyOf(pub crypto.PublicKey) (TrustedKey, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return TrustedKey{ID: KeyID(k), PublicKey: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return TrustedKey{}, Errorf(EINVALID, "ECDSA key on %s: only P-256 signs releases", k.Curve.Params().Name)
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return TrustedKey{}, err
		}
		sum := sha256.Sum256(der)
		return TrustedKey{ID: ecdsaKeyIDPrefix + hex.EncodeToString(sum[:8]), PublicKey: der}, nil
	}
	return TrustedKey{}, Errorf(EINVALID, "a %T cannot sign releases: want ed25519 or ECDSA P-256", pub)
}

// verify reports whether sig is k's signature of msg.
func (k TrustedKey) verify(msg, sig []byte) bool {
	if !strings.HasPrefix(k.ID, ecdsaKeyIDPrefix) {
		return len(k.PublicKey) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(k.PublicKey), msg, sig)
	}
	pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
	if err != nil {
		return false
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return false
	}
	h := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(ec, h[:], sig)
}

// sign signs msg with an ed25519 or ECDSA P-256 key.
func sign(key crypto.Signer, msg []byte) (Signature, error) {
	tk, err := TrustedKeyOf(key.Public())
	if err != nil {
		return Signature{}, err
	}
	var sig []byte
	switch k := key.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		if sig, err = ecdsa.SignASN1(rand.Reader, k, h[:]); err != nil {
			return Signature{}, err
		}
	default:
		// Another signer (a key store's) of a supported key type.
		if _, ok := key.Public().(ed25519.PublicKey); ok {
			sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
		} else {
			h := sha256.Sum256(msg)
			sig, err = key.Sign(rand.Reader, h[:], crypto.SHA256)
		}
		if err != nil {
			return Signature{}, fmt.Errorf("sign with %s: %w", tk.ID, err)
		}
	}
	return Signature{KeyID: tk.ID, Sig: sig}, nil
}
