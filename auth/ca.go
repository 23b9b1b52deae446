package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/flock"
)

// TrustDomain is the SPIFFE trust domain of site identities: a site's
// certificate carries spiffe://modelfleet/site/<id> as its URI SAN.
const TrustDomain = "modelfleet"

// SiteURI is a site's identity in its certificate.
func SiteURI(site string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/site/" + site}
}

// SiteFromCert returns the site a verified client certificate names.
func SiteFromCert(c *x509.Certificate) (string, error) {
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" && u.Host == TrustDomain && strings.HasPrefix(u.Path, "/site/") {
			site := strings.TrimPrefix(u.Path, "/site/")
			if err := modelfleet.ValidateName("site id", site); err != nil {
				return "", err
			}
			return site, nil
		}
	}
	return "", modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "the client certificate names no site (want a URI SAN spiffe://%s/site/<id>)", TrustDomain)
}

// Lifetimes of what the CA issues.
const (
	DefaultSiteCertLifetime = 7 * 24 * time.Hour
	serverCertLifetime      = 90 * 24 * time.Hour
	caLifetime              = 10 * 365 * 24 * time.Hour
)

// CA is the control plane's site CA: it issues each enrolled site its
// client certificate and the gateway's site listener its server
// certificate. Bring your own (cert-manager, Key Vault) by giving its
// certificate and key files, or only a trust bundle: then the gateway
// verifies sites but does not enrol them.
type CA struct {
	Cert   *x509.Certificate
	key    crypto.Signer // nil: verify only
	Bundle []byte        // PEM of the certificates sites are verified against
	pool   *x509.CertPool
}

// OpenCA loads the CA from dir (ca.crt, ca.key), creating it on first
// use. Creation holds an exclusive lock on dir/ca.lock, and looks again
// under it: gateway replicas starting at once on one empty, shared
// directory (a volume whose file system honours flock) end up with one CA,
// not one each, which would refuse the sites the others enrolled.
func OpenCA(dir string) (*CA, error) {
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(crt); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		unlock, err := flock.Lock(filepath.Join(dir, "ca.lock"), 0o600)
		if err != nil {
			return nil, fmt.Errorf("site CA: %w", err)
		}
		defer unlock()
		if _, err := os.Stat(crt); errors.Is(err, os.ErrNotExist) {
			if err := createCA(dir, crt, key); err != nil {
				return nil, err
			}
		}
	}
	return LoadCA(crt, key)
}

func createCA(dir, crtPath, keyPath string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "modelfleet site CA", Organization: []string{"modelfleet"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caLifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// LoadCA loads a CA certificate and, if keyPath is not empty, its key.
func LoadCA(crtPath, keyPath string) (*CA, error) {
	b, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, fmt.Errorf("site CA: %w", err)
	}
	ca := &CA{Bundle: b, pool: x509.NewCertPool()}
	if !ca.pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("site CA %s: no PEM certificate", crtPath)
	}
	blk, _ := pem.Decode(b)
	if ca.Cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, fmt.Errorf("site CA %s: %w", crtPath, err)
	}
	if keyPath == "" {
		return ca, nil
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("site CA key: %w", err)
	}
	kblk, _ := pem.Decode(kb)
	if kblk == nil {
		return nil, fmt.Errorf("site CA key %s: no PEM block", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("site CA key %s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("site CA key %s: not a signing key", keyPath)
	}
	ca.key = signer
	return ca, nil
}

// Pool is the pool client certificates are verified against.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Fingerprint is the SHA-256 of the CA certificate, hex: a join token
// carries it, so an agent enrolling for the first time knows the gateway
// it talks to (as kubeadm's discovery hash).
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// CanIssue reports whether the CA holds its key.
func (ca *CA) CanIssue() bool { return ca.key != nil }

// IssueSite signs a site's CSR: the certificate names the site (URI SAN)
// whatever the request says, for client authentication only.
func (ca *CA) IssueSite(site string, csrPEM []byte, lifetime time.Duration) ([]byte, *x509.Certificate, error) {
	if !ca.CanIssue() {
		return nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "this gateway verifies sites against a trust bundle only: issue site certificates with your PKI")
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: site, Organization: []string{"modelfleet sites"}},
		URIs: []*url.URL{SiteURI(site)}, NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), c, err
}

// ParseCSR checks a site's certificate request: PEM, bounded, signed by
// the key it carries, and that key ECDSA P-256/P-384 or ed25519.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	if len(csrPEM) > 16<<10 {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "certificate request over 16 KiB")
	}
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "certificate request signature: %v", err)
	}
	ok := csr.PublicKeyAlgorithm == x509.Ed25519
	if k, isEC := csr.PublicKey.(*ecdsa.PublicKey); isEC {
		ok = k.Curve == elliptic.P256() || k.Curve == elliptic.P384()
	}
	if !ok {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "certificate request: use an ECDSA P-256 or P-384 or an ed25519 key")
	}
	return csr, nil
}

// ServerCert issues the site listener's TLS certificate for hosts (names
// or IPs), with a fresh key.
func (ca *CA) ServerCert(hosts []string) (tls.Certificate, error) {
	if !ca.CanIssue() {
		return tls.Certificate{}, errors.New("site CA: no key to issue the gateway's server certificate: give --site-tls-cert and --site-tls-key")
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "modelfleet gateway"},
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(serverCertLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &k.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // the system's randomness failed: nothing is safe to do
	}
	return n
}

// writeFile replaces path atomically with mode.
func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
