// Package keyvault holds release-signing keys in Azure Key Vault: a
// crypto.Signer for an EC P-256 key whose private half never leaves the
// vault (or its managed HSM). Key Vault signs ES256 (ECDSA P-256 over a
// SHA-256 digest) and has no ed25519, so a Key Vault release key is always
// ECDSA P-256, known to sites by the same "ecdsa-p256:…" ID a key file of
// that type has (modelfleet.TrustedKeyOf of its public key).
//
// The seam is two REST calls through the SDK (azkeys): GetKey once, when
// the key is opened (its public key and version), and Sign for every
// signature. Nothing else of the vault is used.
package keyvault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// DefaultTimeout bounds one Sign call to the vault (crypto.Signer has no
// context, so the key carries the bound).
const DefaultTimeout = 30 * time.Second

// MaxKeyURL bounds a key URL's length.
const MaxKeyURL = 2048

// Key is a release-signing key in Key Vault, pinned to one version: a
// version-less URL opens the key's current version, and that version
// signs until the process restarts, so the public key sites pinned and the
// key that signs never drift apart.
type Key struct {
	client  *azkeys.Client
	name    string
	version string
	id      string // https://<vault>/keys/<name>/<version>
	pub     *ecdsa.PublicKey
	changed time.Time
	// Timeout bounds one Sign call (default DefaultTimeout).
	Timeout time.Duration
}

var _ crypto.Signer = (*Key)(nil)

// KeyURL is a parsed key URL: https://<vault>.vault.azure.net/keys/<name>[/<version>].
type KeyURL struct {
	Vault   string // https://<host>
	Name    string
	Version string // empty: the current version
}

// String is the URL.
func (u KeyURL) String() string {
	s := u.Vault + "/keys/" + u.Name
	if u.Version != "" {
		s += "/" + u.Version
	}
	return s
}

// Key Vault's rules for names (1-127 letters, digits, dashes) and
// versions (32 hex digits today; accepted: 1-64 letters and digits).
var (
	keyName    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	keyVersion = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
	vaultHost  = regexp.MustCompile(`^[0-9A-Za-z-]{1,63}(\.[0-9A-Za-z-]{1,63}){1,8}$`)
)

// ParseKeyURL reads a key URL as the Azure portal and `az keyvault key
// show` print it (the key's "kid"), with or without its version.
func ParseKeyURL(s string) (KeyURL, error) {
	if len(s) > MaxKeyURL {
		return KeyURL{}, fmt.Errorf("key vault key URL: %d bytes, at most %d", len(s), MaxKeyURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return KeyURL{}, fmt.Errorf("key vault key URL: %v", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.RawPath != "" {
		return KeyURL{}, fmt.Errorf("key vault key URL %q: want https://<vault>.vault.azure.net/keys/<name>[/<version>]", s)
	}
	if !vaultHost.MatchString(u.Host) {
		return KeyURL{}, fmt.Errorf("key vault key URL %q: host %q: want a DNS name (<vault>.vault.azure.net), no port", s, u.Host)
	}
	var k KeyURL
	k.Vault = "https://" + u.Host
	rest, ok := strings.CutPrefix(u.Path, "/keys/")
	if !ok {
		return KeyURL{}, fmt.Errorf("key vault key URL %q: the path must be /keys/<name>[/<version>]", s)
	}
	name, version, _ := strings.Cut(rest, "/")
	if !keyName.MatchString(name) {
		return KeyURL{}, fmt.Errorf("key vault key URL %q: key name %q: want 1-127 letters, digits and dashes", s, name)
	}
	if version != "" && !keyVersion.MatchString(version) {
		return KeyURL{}, fmt.Errorf("key vault key URL %q: key version %q: want letters and digits", s, version)
	}
	k.Name, k.Version = name, version
	return k, nil
}

// Open reads the key at keyURL (GetKey: its public key, its version) with
// cred (azidentity's DefaultAzureCredential in production; the identity
// needs the "get" and "sign" key permissions, e.g. the role Key Vault
// Crypto User). opts may be nil.
func Open(ctx context.Context, keyURL string, cred azcore.TokenCredential, opts *azkeys.ClientOptions) (*Key, error) {
	ku, err := ParseKeyURL(keyURL)
	if err != nil {
		return nil, err
	}
	c, err := azkeys.NewClient(ku.Vault, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("key vault %s: %w", ku.Vault, err)
	}
	res, err := c.GetKey(ctx, ku.Name, ku.Version, nil)
	if err != nil {
		return nil, fmt.Errorf("key vault key %s: %w", ku, err)
	}
	pub, version, err := PublicKey(res.Key, ku)
	if err != nil {
		return nil, err
	}
	if a := res.Attributes; a != nil && a.Enabled != nil && !*a.Enabled {
		return nil, fmt.Errorf("key vault key %s: disabled", ku)
	}
	k := &Key{client: c, name: ku.Name, version: version, pub: pub}
	k.id = KeyURL{Vault: ku.Vault, Name: ku.Name, Version: version}.String()
	if a := res.Attributes; a != nil {
		for _, t := range []*time.Time{a.Created, a.Updated} {
			if t != nil && t.After(k.changed) {
				k.changed = *t
			}
		}
	}
	return k, nil
}

// PublicKey reads the JSON Web Key GetKey answered for the key at want:
// an EC P-256 key allowed to sign, and the version its kid names.
func PublicKey(jwk *azkeys.JSONWebKey, want KeyURL) (*ecdsa.PublicKey, string, error) {
	if jwk == nil {
		return nil, "", fmt.Errorf("key vault key %s: the answer holds no key", want)
	}
	if jwk.Kty == nil || (*jwk.Kty != azkeys.KeyTypeEC && *jwk.Kty != azkeys.KeyTypeECHSM) {
		return nil, "", fmt.Errorf("key vault key %s: type %s: only EC P-256 keys sign releases (Key Vault has no ed25519)", want, clip(deref(jwk.Kty)))
	}
	if jwk.Crv == nil || *jwk.Crv != azkeys.CurveNameP256 {
		return nil, "", fmt.Errorf("key vault key %s: curve %s: only P-256 signs releases", want, clip(deref(jwk.Crv)))
	}
	if jwk.KeyOps != nil && !slices.ContainsFunc(jwk.KeyOps, func(op *azkeys.KeyOperation) bool {
		return op != nil && *op == azkeys.KeyOperationSign
	}) {
		return nil, "", fmt.Errorf("key vault key %s: the key does not permit \"sign\"", want)
	}
	if len(jwk.X) != 32 || len(jwk.Y) != 32 {
		return nil, "", fmt.Errorf("key vault key %s: coordinates of %d and %d bytes, want 32", want, len(jwk.X), len(jwk.Y))
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, jwk.X...), jwk.Y...))
	if err != nil {
		return nil, "", fmt.Errorf("key vault key %s: %v", want, err)
	}
	if jwk.KID == nil {
		return nil, "", fmt.Errorf("key vault key %s: the answer names no kid", want)
	}
	got, err := ParseKeyURL(string(*jwk.KID))
	switch {
	case err != nil:
		return nil, "", fmt.Errorf("key vault key %s: kid: %v", want, err)
	case got.Name != want.Name || got.Version == "" || (want.Version != "" && got.Version != want.Version):
		return nil, "", fmt.Errorf("key vault key %s: the answer is for %s", want, clip(string(*jwk.KID)))
	}
	return pub, got.Version, nil
}

// Public is the key's public half (*ecdsa.PublicKey).
func (k *Key) Public() crypto.PublicKey { return k.pub }

// ID is the key's versioned URL (its kid), for logs.
func (k *Key) ID() string { return k.id }

// Changed is when the key was created or last updated in the vault (zero
// if the vault did not say): it moves the serial of the signed key set.
func (k *Key) Changed() time.Time { return k.changed }

// Sign signs a SHA-256 digest with ES256 in the vault and returns the
// ASN.1 DER signature crypto.Signer promises (Key Vault answers the raw
// r‖s of JWS). A signature that does not verify under the pinned public key
// is an error, never returned.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != 32 {
		return nil, fmt.Errorf("key vault key %s: signs only SHA-256 digests (ES256)", k.id)
	}
	d := k.Timeout
	if d <= 0 {
		d = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res, err := k.client.Sign(ctx, k.name, k.version, azkeys.SignParameters{
		Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest,
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("key vault key %s: sign: %w", k.id, err)
	}
	sig, err := ASN1Signature(res.Result)
	if err != nil {
		return nil, fmt.Errorf("key vault key %s: %w", k.id, err)
	}
	if !ecdsa.VerifyASN1(k.pub, digest, sig) {
		return nil, fmt.Errorf("key vault key %s: the vault's signature does not verify under the key's public key", k.id)
	}
	return sig, nil
}

// ASN1Signature turns a JWS ECDSA P-256 signature (r and s, 32 bytes each,
// big-endian; RFC 7518 §3.4) into ASN.1 DER (what crypto.Signer and
// ecdsa.VerifyASN1 use).
func ASN1Signature(raw []byte) ([]byte, error) {
	if len(raw) != 64 {
		return nil, fmt.Errorf("ES256 signature of %d bytes, want 64", len(raw))
	}
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, errors.New("ES256 signature with a zero r or s")
	}
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

func deref[T ~string](p *T) string {
	if p == nil {
		return "(none)"
	}
	return string(*p)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}
