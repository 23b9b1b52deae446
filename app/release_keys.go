package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/keyvault"
)

// RevokedFile lists the revoked release keys of a release-keys directory,
// one key ID per line.
const RevokedFile = "revoked"

// ReleaseKeys are the control plane's release-signing keys: every *.key in
// a directory (ed25519, PKCS#8 PEM; <pki>/release-keys by default), minus
// those whose IDs the directory's revoked file lists. Every key not revoked
// signs every statement, newest first, so sites that learned a rotated-in
// key and sites that did not yet both find a signature they trust. The
// cloud worker signs with them; the gateway gives their public halves to
// sites at enrolment and, as a signed key set, with every desired state.
type ReleaseKeys struct {
	dir    string
	keys   []crypto.Signer // not revoked, newest first
	trust  modelfleet.Trust
	keySet *modelfleet.Envelope
}

var _ modelfleet.ReleaseSigner = (*ReleaseKeys)(nil)

// OpenReleaseKeys reads the release keys in dir, creating the first one if
// there is none and create is set (the gateway, the embedded stack). A
// directory whose keys are all revoked is an error: nothing could sign.
//
// vault are release keys held in Azure Key Vault (--release-key-vault):
// they sign first, in the order given, then the directory's keys; the
// directory's revoked file revokes them too. With vault keys the directory
// may be empty ("" for none: the worker signing only in the vault), and
// none is created in it.
func OpenReleaseKeys(dir string, create bool, vault ...*keyvault.Key) (*ReleaseKeys, error) {
	var all []crypto.Signer
	var revoked []string
	if dir != "" {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.key"))
		if len(paths) == 0 && !create && len(vault) == 0 {
			return nil, fmt.Errorf("release keys: no *.key in %s (`modelfleet keys rotate --dir %s` makes one)", dir, dir)
		}
		if len(paths) == 0 && create && len(vault) == 0 {
			if _, err := loadControlKeys(dir); err != nil { // same format; creates one
				return nil, fmt.Errorf("release keys: %w", err)
			}
		}
		var err error
		if all, err = readKeysNewestFirst(dir); err != nil {
			return nil, err
		}
		if revoked, err = readRevoked(filepath.Join(dir, RevokedFile)); err != nil {
			return nil, err
		}
	} else if len(vault) == 0 {
		return nil, fmt.Errorf("release keys: neither a directory nor a Key Vault key")
	}
	vs := make([]crypto.Signer, 0, len(vault)+len(all))
	for _, k := range vault {
		vs = append(vs, k)
	}
	all = append(vs, all...)
	r := &ReleaseKeys{dir: dir, trust: modelfleet.Trust{Revoked: revoked}}
	seen := map[string]bool{}
	for _, k := range all {
		tk, err := modelfleet.TrustedKeyOf(k.Public())
		if err != nil {
			return nil, fmt.Errorf("release keys: %w", err)
		}
		if seen[tk.ID] {
			return nil, fmt.Errorf("release keys: key %s is configured twice", tk.ID)
		}
		seen[tk.ID] = true
		if slices.Contains(revoked, tk.ID) {
			continue
		}
		r.keys = append(r.keys, k)
		r.trust.Keys = append(r.trust.Keys, tk)
	}
	if len(r.keys) == 0 {
		return nil, fmt.Errorf("release keys: every key in %s is revoked: rotate first (`modelfleet keys rotate`)", dir)
	}
	if len(all) > modelfleet.MaxEnvelopeSignatures || len(revoked) > modelfleet.MaxRevokedKeys {
		// Every key signs the key set, and a verifier reads at most
		// MaxEnvelopeSignatures signatures.
		return nil, fmt.Errorf("release keys: %d keys (%d revoked) in %s and Key Vault, at most %d: delete the files of keys revoked long ago (sites keep their revocation)", len(all), len(revoked), dir, modelfleet.MaxEnvelopeSignatures)
	}
	// A Key Vault key created or updated after the last rotation moves
	// the serial too, so sites learn it.
	for _, k := range vault {
		r.trust.Serial = max(r.trust.Serial, k.Changed().Unix())
	}
	// The serial orders key sets at the sites: it moves with every
	// rotation (a newer key file) and revocation (the revoked file).
	var paths []string
	if dir != "" {
		paths, _ = filepath.Glob(filepath.Join(dir, "*.key"))
		paths = append(paths, filepath.Join(dir, RevokedFile))
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			r.trust.Serial = max(r.trust.Serial, fi.ModTime().Unix())
		}
	}
	// The key set is signed by every key, revoked ones too: a site that
	// pinned only a key revoked since still learns the set that revokes
	// it (and the keys that replace it). A revoked key's holder can sign
	// key sets anyway; sites that learned the revocation no longer trust
	// that signature, and the others find the rest.
	var err error
	if r.keySet, err = modelfleet.SignKeySet(r.trust, all); err != nil {
		return nil, err
	}
	return r, nil
}

// VaultKeys are release keys in Azure Key Vault, in the order they sign.
type VaultKeys = []*keyvault.Key

// OpenVaultKeys opens the release keys at the Azure Key Vault key URLs
// (--release-key-vault: https://<vault>.vault.azure.net/keys/<name>[/<version>])
// with cred, in order; opts may be nil.
func OpenVaultKeys(ctx context.Context, urls []string, cred azcore.TokenCredential, opts *azkeys.ClientOptions) (VaultKeys, error) {
	keys := make([]*keyvault.Key, 0, len(urls))
	for _, u := range urls {
		k, err := keyvault.Open(ctx, u, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("release keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readKeysNewestFirst reads the *.key files in dir, the most recently
// written first.
func readKeysNewestFirst(dir string) ([]crypto.Signer, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.key"))
	type file struct {
		path string
		mod  time.Time
	}
	files := make([]file, 0, len(paths))
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("release key %s: %w", p, err)
		}
		files = append(files, file{p, fi.ModTime()})
	}
	slices.SortFunc(files, func(a, b file) int {
		if c := b.mod.Compare(a.mod); c != 0 {
			return c
		}
		return strings.Compare(b.path, a.path)
	})
	var keys []crypto.Signer
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("release key %s: no PEM block", f.path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("release key %s: %w", f.path, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("release key %s: not a signing key", f.path)
		}
		if _, err := modelfleet.TrustedKeyOf(signer.Public()); err != nil {
			return nil, fmt.Errorf("release key %s: %w", f.path, err)
		}
		keys = append(keys, signer)
	}
	return keys, nil
}

func readRevoked(p string) ([]string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release keys: %w", err)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" && !strings.HasPrefix(id, "#") {
			ids = append(ids, id)
		}
	}
	return ids, sc.Err()
}

// SignRelease signs a release statement with every key not revoked.
func (r *ReleaseKeys) SignRelease(_ context.Context, st modelfleet.Statement) (*modelfleet.Envelope, error) {
	return modelfleet.SignStatement(st, r.keys)
}

// Trust is what sites pin at enrolment.
func (r *ReleaseKeys) Trust() *modelfleet.Trust {
	t := r.trust
	t.Keys, t.Revoked = slices.Clone(t.Keys), slices.Clone(t.Revoked)
	return &t
}

// KeySet is the trust, signed: what desired states carry to the sites.
func (r *ReleaseKeys) KeySet() *modelfleet.Envelope { return r.keySet }

// RotateReleaseKeys adds a new release key to dir and revokes the keys
// whose IDs revoke lists, returning the new key's ID. Restart the gateway
// and the worker to use it: sites learn the key set with their next desired
// state (it is signed by the keys they already trust), and from then on
// refuse what only a revoked key signed.
func RotateReleaseKeys(dir string, revoke []string, alg string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	revoked, err := readRevoked(filepath.Join(dir, RevokedFile))
	if err != nil {
		return "", err
	}
	known := map[string]bool{}
	if old, _ := filepath.Glob(filepath.Join(dir, "*.key")); len(old) > 0 {
		keys, err := readKeysNewestFirst(dir)
		if err != nil {
			return "", err
		}
		for _, k := range keys {
			if tk, err := modelfleet.TrustedKeyOf(k.Public()); err == nil {
				known[tk.ID] = true
			}
		}
	}
	for _, id := range revoke {
		if !known[id] {
			return "", fmt.Errorf("release keys: no key %q in %s", id, dir)
		}
	}
	var k crypto.Signer
	switch alg {
	case "", KeyEd25519:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case KeyECDSAP256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return "", fmt.Errorf("release keys: algorithm %q: want %s or %s", alg, KeyEd25519, KeyECDSAP256)
	}
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	// Names sort by time: the newest key signs first.
	name := time.Now().UTC().Format("20060102T150405.000000000Z") + ".key"
	if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	var add []string
	for _, id := range revoke {
		if !slices.Contains(revoked, id) {
			add = append(add, id)
		}
	}
	if len(add) > 0 {
		f, err := os.OpenFile(filepath.Join(dir, RevokedFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(strings.Join(add, "\n") + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	tk, err := modelfleet.TrustedKeyOf(k.Public())
	return tk.ID, err
}

// Release key algorithms (RotateReleaseKeys).
const (
	KeyEd25519   = "ed25519"
	KeyECDSAP256 = "ecdsa-p256"
)

var _ modelfleet.WorkloadSigner = (*ReleaseKeys)(nil)

// SignWorkload signs a workload statement with every key not revoked.
func (r *ReleaseKeys) SignWorkload(_ context.Context, st modelfleet.WorkloadStatement) (*modelfleet.Envelope, error) {
	return modelfleet.SignWorkloadStatement(st, r.keys)
}

// SignAPIKeys signs a site's router API key set with every key not revoked
// (fleet.Directory.SetAPIKeys, for sites that pinned these keys).
func (r *ReleaseKeys) SignAPIKeys(st modelfleet.APIKeysStatement) (*modelfleet.Envelope, error) {
	return modelfleet.SignAPIKeysStatement(st, r.keys)
}

// VerifyAPIKeys checks a signed API key set as a site that pinned these
// keys would.
func (r *ReleaseKeys) VerifyAPIKeys(env *modelfleet.Envelope, site string) (modelfleet.APIKeysStatement, error) {
	return r.trust.VerifyAPIKeys(env, site)
}
