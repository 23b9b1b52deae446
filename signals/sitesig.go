package signals

// Site signatures: every signal message an enrolled site sends carries a
// signature by the site's own key (the key its mTLS certificate is for)
// and that certificate, so the drift monitor can tell which site sent it
// whatever carried it: the gateway's queue, the gateway relaying to Service
// Bus, or the site's own Service Bus identity (docs/security.md, Signals).
//
// The signature covers the message ID, the content type and the body,
// encoded unambiguously (PAE, as DSSE does):
//
//	"modelfleet-signal-v1" SP len(id) SP id SP len(contentType) SP contentType SP len(body) SP body
//
// Properties are not signed: the gateway adds its stamp after the site
// signed. The signature and the certificate travel as application
// properties (PropertySignature, PropertyCertificate), base64, bounded.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/queue"
)

// Application properties of a signed signal message.
const (
	// PropertySignature is the signature, standard base64.
	PropertySignature = "modelfleet-signature"
	// PropertyCertificate is the signer's leaf certificate, DER in
	// standard base64.
	PropertyCertificate = "modelfleet-certificate"
	// signaturePayloadType separates these signatures from any other the
	// same key makes (TLS handshakes, certificate requests).
	signaturePayloadType = "modelfleet-signal-v1"
	// MaxSignatureProperty and MaxCertificateProperty bound the two
	// properties before they are decoded: an ECDSA P-384 signature is at
	// most 104 bytes, an RSA-4096 one 512 (684 in base64), and a site
	// certificate well under 2 KiB.
	MaxSignatureProperty   = 700
	MaxCertificateProperty = 8 << 10
)

// Reasons a site-signed message is refused (queue.PermanentReason).
const (
	ReasonUnsigned             = "Unsigned"
	ReasonBadCertificate       = "BadCertificate"
	ReasonUntrustedCertificate = "UntrustedCertificate"
	ReasonRevokedCertificate   = "RevokedCertificate"
	ReasonBadSignature         = "BadSignature"
)

// siteTrustDomain and sitePathPrefix are the SPIFFE ID a site certificate
// names (spiffe://modelfleet/site/<id>), as auth.SiteURI writes it: signals
// may not import auth (README, Layout), and the identity is a wire format,
// fixed as the URI a certificate carries.
const (
	siteTrustDomain = "modelfleet"
	sitePathPrefix  = "/site/"
)

// SignatureError is why a message's site signature was refused; Reason is
// one of the Reason* constants.
type SignatureError struct {
	Reason string
	Err    error
}

func (e *SignatureError) Error() string { return "site signature: " + e.Err.Error() }
func (e *SignatureError) Unwrap() error { return e.Err }

func sigErr(reason, format string, args ...any) error {
	return &SignatureError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// signedPayload is what a site signs for message m.
func signedPayload(id, contentType string, body []byte) []byte {
	var b strings.Builder
	b.Grow(len(signaturePayloadType) + len(id) + len(contentType) + len(body) + 40)
	b.WriteString(signaturePayloadType)
	for _, f := range []string{id, contentType, string(body)} {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(' ')
		b.WriteString(f)
	}
	return []byte(b.String())
}

// minRSABits is the smallest RSA key a site may sign with (a site CA of
// your own PKI may issue RSA certificates; enrolment issues ECDSA).
const minRSABits = 2048

// digestFor is what a site key signs: the SHA-256 (P-256, RSA) or SHA-384
// (P-384) digest of msg, or msg itself for ed25519.
func digestFor(pub crypto.PublicKey, msg []byte) ([]byte, crypto.Hash, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return msg, crypto.Hash(0), nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, 0, fmt.Errorf("RSA key of %d bits: at least %d are needed", k.N.BitLen(), minRSABits)
		}
		s := sha256.Sum256(msg)
		return s[:], crypto.SHA256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			s := sha256.Sum256(msg)
			return s[:], crypto.SHA256, nil
		case elliptic.P384():
			s := sha512.Sum384(msg)
			return s[:], crypto.SHA384, nil
		}
	}
	return nil, 0, fmt.Errorf("unsupported key type %T (want ECDSA P-256/P-384, ed25519 or RSA)", pub)
}

// Sign signs m with the site's key and attaches the signature and the
// site's leaf certificate (DER). It replaces any signature m carried.
func Sign(m *queue.Message, key crypto.Signer, leafDER []byte) error {
	if len(leafDER) == 0 || base64.StdEncoding.EncodedLen(len(leafDER)) > MaxCertificateProperty {
		return fmt.Errorf("signals: sign %q: the site certificate is empty or over %d bytes encoded", m.ID, MaxCertificateProperty)
	}
	digest, h, err := digestFor(key.Public(), signedPayload(m.ID, m.ContentType, m.Body))
	if err != nil {
		return fmt.Errorf("signals: sign %q: %w", m.ID, err)
	}
	sig, err := key.Sign(rand.Reader, digest, h)
	if err != nil {
		return fmt.Errorf("signals: sign %q: %w", m.ID, err)
	}
	props := make(map[string]string, len(m.Properties)+2)
	for k, v := range m.Properties {
		props[k] = v
	}
	props[PropertySignature] = base64.StdEncoding.EncodeToString(sig)
	props[PropertyCertificate] = base64.StdEncoding.EncodeToString(leafDER)
	m.Properties = props
	return nil
}

// SiteKey is a site's current signing key and certificate; an agent's
// identity renews both in place, so a SignedSender asks for them on every
// send.
type SiteKey func() (crypto.Signer, []byte, error)

// SignedSender signs every message with the site's key, then sends it.
type SignedSender struct {
	Next queue.Sender
	Key  SiteKey
}

var _ queue.Sender = (*SignedSender)(nil)

// Send implements queue.Sender. A message that cannot be signed is not
// sent: the error is transient (the identity may be renewing), so the
// message stays buffered.
func (s *SignedSender) Send(ctx context.Context, m queue.Message) error {
	key, leaf, err := s.Key()
	if err != nil {
		return fmt.Errorf("signals: site key: %w", err)
	}
	if err := Sign(&m, key, leaf); err != nil {
		return err
	}
	return s.Next.Send(ctx, m)
}

// Signed reports whether m carries a site signature (valid or not).
func Signed(m queue.Message) bool {
	_, sig := m.Properties[PropertySignature]
	_, cert := m.Properties[PropertyCertificate]
	return sig || cert
}

// SiteVerifier checks the site signature of a signal message: the
// certificate chains to the site CA bundle, is a client certificate, is
// not revoked, and names a site, whose key signed the message.
type SiteVerifier struct {
	// Roots are the site CA bundle (with any intermediates).
	Roots *x509.CertPool
	// Revoked, if set, reports whether a certificate serial (lowercase
	// hex) was revoked: the gateway's enrolment store. Nil: no revocation
	// list is available.
	Revoked func(serialHex string) bool
	// RevokedCert, if set, reports whether a certificate is revoked by
	// other means: a bring-your-own CA's revocation lists (auth.CRLFiles).
	RevokedCert func(*x509.Certificate) bool

	// chains caches certificates verified against Roots, by their
	// property value: a site signs thousands of messages with one
	// certificate, and its chain need not be verified for each.
	// Revocation and the signature are checked on every message.
	mu     sync.Mutex
	chains map[string]*verifiedChain
}

// verifiedChain is a site certificate that chains to the roots while
// every certificate of the chain is valid: from notBefore to notAfter.
type verifiedChain struct {
	cert                *x509.Certificate
	site                string
	notBefore, notAfter time.Time
}

// maxCachedChains bounds the cache: past it, it starts over (a fleet's
// sites hold at most a few certificates each at a time).
const maxCachedChains = 16384

// DecodeSignature reads and bounds the signature properties of m: the
// signature bytes and the parsed certificate.
func DecodeSignature(m queue.Message) (sig []byte, cert *x509.Certificate, err error) {
	sig, c64, err := signatureProperties(m)
	if err != nil {
		return nil, nil, err
	}
	cert, err = parseCertificate(m.ID, c64)
	return sig, cert, err
}

// signatureProperties returns the decoded signature and the certificate
// property, both within their bounds.
func signatureProperties(m queue.Message) ([]byte, string, error) {
	s64, ok := m.Properties[PropertySignature]
	c64, ok2 := m.Properties[PropertyCertificate]
	if !ok || !ok2 {
		return nil, "", sigErr(ReasonUnsigned, "message %q carries no site signature (properties %s and %s)", m.ID, PropertySignature, PropertyCertificate)
	}
	if len(s64) > MaxSignatureProperty || len(c64) > MaxCertificateProperty {
		return nil, "", sigErr(ReasonBadSignature, "message %q: signature property over %d or certificate property over %d bytes", m.ID, MaxSignatureProperty, MaxCertificateProperty)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s64)
	if err != nil || len(sig) == 0 {
		return nil, "", sigErr(ReasonBadSignature, "message %q: %s is not standard base64", m.ID, PropertySignature)
	}
	return sig, c64, nil
}

func parseCertificate(id, c64 string) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.Strict().DecodeString(c64)
	if err != nil || len(der) == 0 {
		return nil, sigErr(ReasonBadCertificate, "message %q: %s is not standard base64", id, PropertyCertificate)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, sigErr(ReasonBadCertificate, "message %q: certificate: %v", id, err)
	}
	return cert, nil
}

// SiteOf returns the site a certificate names in its SPIFFE URI SAN.
func SiteOf(c *x509.Certificate) (string, error) {
	for _, u := range c.URIs {
		if u.Scheme == "spiffe" && u.Host == siteTrustDomain && strings.HasPrefix(u.Path, sitePathPrefix) {
			site := strings.TrimPrefix(u.Path, sitePathPrefix)
			if err := modelfleet.ValidateName("site id", site); err != nil {
				return "", err
			}
			return site, nil
		}
	}
	return "", fmt.Errorf("the certificate names no site (want a URI SAN spiffe://%s%s<id>)", siteTrustDomain, sitePathPrefix)
}

// Verify checks m's site signature as of at (when the queue enqueued it:
// a message sent just before its certificate expired stays valid while it
// waits in the queue) and returns the site that signed it. Errors are
// *SignatureError.
func (v *SiteVerifier) Verify(m queue.Message, at time.Time) (string, error) {
	sig, c64, err := signatureProperties(m)
	if err != nil {
		return "", err
	}
	if v == nil || v.Roots == nil {
		return "", sigErr(ReasonUntrustedCertificate, "message %q: no site CA bundle to verify its certificate with", m.ID)
	}
	if at.IsZero() {
		at = time.Now()
	}
	vc, err := v.chain(m.ID, c64, at)
	if err != nil {
		return "", err
	}
	cert, site := vc.cert, vc.site
	if v.Revoked != nil && v.Revoked(cert.SerialNumber.Text(16)) || v.RevokedCert != nil && v.RevokedCert(cert) {
		return "", sigErr(ReasonRevokedCertificate, "message %q: certificate %s of site %s is revoked", m.ID, cert.SerialNumber.Text(16), site)
	}
	digest, _, err := digestFor(cert.PublicKey, signedPayload(m.ID, m.ContentType, m.Body))
	if err != nil {
		return "", sigErr(ReasonBadCertificate, "message %q: %v", m.ID, err)
	}
	ok := false
	switch k := cert.PublicKey.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, digest, sig)
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		// PKCS #1 v1.5, what crypto.Signer.Sign gives for an RSA key with
		// crypto.SHA256 as its options.
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
	}
	if !ok {
		return "", sigErr(ReasonBadSignature, "message %q: the signature of site %s does not match the message (changed after signing, or signed by another key)", m.ID, site)
	}
	return site, nil
}

// chain returns the certificate in c64 verified against the roots as of
// at, and the site it names: from the cache when it was verified for a
// window holding at.
func (v *SiteVerifier) chain(id, c64 string, at time.Time) (*verifiedChain, error) {
	v.mu.Lock()
	vc := v.chains[c64]
	v.mu.Unlock()
	if vc != nil && !at.Before(vc.notBefore) && !at.After(vc.notAfter) {
		return vc, nil
	}
	cert, err := parseCertificate(id, c64)
	if err != nil {
		return nil, err
	}
	chains, err := cert.Verify(x509.VerifyOptions{Roots: v.Roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, sigErr(ReasonUntrustedCertificate, "message %q: certificate %s does not chain to the site CA: %v", id, cert.SerialNumber.Text(16), err)
	}
	site, err := SiteOf(cert)
	if err != nil {
		return nil, sigErr(ReasonBadCertificate, "message %q: %v", id, err)
	}
	vc = &verifiedChain{cert: cert, site: site, notBefore: cert.NotBefore, notAfter: cert.NotAfter}
	for _, c := range chains[0] {
		if c.NotBefore.After(vc.notBefore) {
			vc.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(vc.notAfter) {
			vc.notAfter = c.NotAfter
		}
	}
	v.mu.Lock()
	if v.chains == nil || len(v.chains) >= maxCachedChains {
		v.chains = map[string]*verifiedChain{}
	}
	v.chains[c64] = vc
	v.mu.Unlock()
	return vc, nil
}

// ReasonOf returns the reason of a *SignatureError, or "" for any other.
func ReasonOf(err error) string {
	var se *SignatureError
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}
