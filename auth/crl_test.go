package auth

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// testCA is a site CA with its key, to sign CRLs as a plant's PKI would.
type testCA struct {
	*CA
	key crypto.Signer
}

func openTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	ca, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{CA: ca, key: k.(crypto.Signer)}
}

func (c testCA) site(t *testing.T, id string) *x509.Certificate {
	t.Helper()
	_, cert, err := c.IssueSite(id, csr(t, id), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// crl makes a DER CRL c signs, listing certs, with its next update at next.
func (c testCA) crl(t *testing.T, number int64, next time.Time, certs ...*x509.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: next.Add(-48 * time.Hour), NextUpdate: next}
	for _, x := range certs {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: x.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.Cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemCRL(ders ...[]byte) []byte {
	var b []byte
	for _, d := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: d})...)
	}
	return b
}

func writeSwap(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

// A bring-your-own CA's CRLs revoke the certificates they list at the
// gateway's guard: PEM bundles and DER, several files, re-read when they
// change; CRLs another CA signed, or altered, are refused and the CRLs in
// force stay; an expired CRL is logged as an error and still applied.
func TestSiteCRLs(t *testing.T) {
	ca, other := openTestCA(t), openTestCA(t)
	s1, s2, s3 := ca.site(t, "site-1"), ca.site(t, "site-2"), ca.site(t, "site-3")
	dir := t.TempDir()
	pemFile, derFile := filepath.Join(dir, "crls.pem"), filepath.Join(dir, "crl.der")
	later := time.Now().Add(24 * time.Hour)
	writeSwap(t, pemFile, pemCRL(ca.crl(t, 1, later, s1)))
	writeSwap(t, derFile, ca.crl(t, 2, later))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	crls, err := NewCRLFiles([]string{pemFile, derFile}, ca.Bundle, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := crls.Load(); err != nil {
		t.Fatal(err)
	}
	g := NewGuard(nil, &Bindings{}, log, nil)
	g.CA, g.CRLs = ca.CA, crls
	refused := func(c *x509.Certificate) bool {
		t.Helper()
		_, err := g.siteFromCert(c)
		if err != nil && modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
			t.Fatalf("a refusal that is not 401: %v", err)
		}
		return err != nil
	}
	if !refused(s1) || refused(s2) || refused(s3) {
		t.Fatalf("with site-1 listed: refused %v %v %v", refused(s1), refused(s2), refused(s3))
	}
	// A certificate of another CA with site-1's serial is not site-1's.
	lookalike := *s1
	lookalike.RawIssuer, _ = asn1Name("plant PKI")
	if crls.Revoked(&lookalike) {
		t.Fatal("a serial of another issuer counts as revoked")
	}

	// The files change: a bundle of two CRLs in one, site-3 in the DER one.
	writeSwap(t, pemFile, pemCRL(ca.crl(t, 3, later, s2), ca.crl(t, 4, later)))
	writeSwap(t, derFile, ca.crl(t, 5, later, s3))
	if err := crls.Check(); err != nil {
		t.Fatal(err)
	}
	if refused(s1) || !refused(s2) || !refused(s3) {
		t.Fatalf("after the change: refused %v %v %v", refused(s1), refused(s2), refused(s3))
	}

	// Refused contents keep the CRLs in force.
	tampered := ca.crl(t, 6, later)
	tampered[len(tampered)-3] ^= 0xff
	for name, b := range map[string][]byte{
		"another CA's":     pemCRL(other.crl(t, 1, later)),
		"altered":          pemCRL(tampered),
		"a certificate":    ca.Bundle,
		"garbage":          []byte("not a CRL"),
		"empty":            nil,
		"trailing garbage": append(pemCRL(ca.crl(t, 7, later)), "junk"...),
	} {
		writeSwap(t, pemFile, b)
		if err := crls.Check(); err == nil {
			t.Errorf("%s CRL file: applied", name)
		}
		if !refused(s2) || !refused(s3) || refused(s1) {
			t.Fatalf("%s CRL file changed the CRLs in force", name)
		}
	}
	if err := os.Remove(pemFile); err != nil {
		t.Fatal(err)
	}
	if err := crls.Check(); err == nil || !refused(s2) {
		t.Fatalf("a missing file: %v, site-2 refused %v", err, refused(s2))
	}

	// An expired CRL is applied, loudly.
	logs.Reset()
	writeSwap(t, pemFile, pemCRL(ca.crl(t, 8, time.Now().Add(-time.Hour), s1)))
	if err := crls.Check(); err != nil {
		t.Fatal(err)
	}
	if !refused(s1) {
		t.Fatal("an expired CRL is not applied")
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "past their next update") {
		t.Fatalf("an expired CRL is not logged as an error: %s", logs.String())
	}

	// At start, a bad file is fatal.
	writeSwap(t, pemFile, pemCRL(other.crl(t, 2, later)))
	again, err := NewCRLFiles([]string{pemFile}, ca.Bundle, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Load(); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("a CRL of another CA at start: %v", err)
	}
}

// FuzzSiteCRLFile: any CRL file content is refused or yields revocations,
// never a panic; what is not signed by the CA is never applied.
func FuzzSiteCRLFile(f *testing.F) {
	dir := f.TempDir()
	ca, err := OpenCA(dir)
	if err != nil {
		f.Fatal(err)
	}
	crls, err := NewCRLFiles([]string{filepath.Join(dir, "crl.pem")}, ca.Bundle, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Add(ca.Bundle)
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := crls.parse([][]byte{b})
		if err == nil && len(tab.revoked) > 0 {
			t.Fatalf("a fuzzed CRL verified against the CA: %d revocations", len(tab.revoked))
		}
	})
}

func asn1Name(cn string) ([]byte, error) {
	return asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
}
