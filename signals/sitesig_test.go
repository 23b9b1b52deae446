package signals

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/queue"
)

// siteIdentity is a site key and the certificate the control plane's own
// site CA (auth.CA, as the gateway runs it) issued for it.
func siteIdentity(t testing.TB, ca *auth.CA, site string, key crypto.Signer) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: site}}, key)
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := ca.IssueSite(site, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

func mustCA(t testing.TB) *auth.CA {
	t.Helper()
	ca, err := auth.OpenCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func signed(t testing.TB, key crypto.Signer, cert *x509.Certificate, m queue.Message) queue.Message {
	t.Helper()
	if err := Sign(&m, key, cert.Raw); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSiteSignature(t *testing.T) {
	ca := mustCA(t)
	key, cert := siteIdentity(t, ca, "site-1", nil)
	revoked := map[string]bool{}
	v := &SiteVerifier{Roots: ca.Pool(), Revoked: func(s string) bool { return revoked[s] }}
	body := encode(t, validMessage())
	m := signed(t, key, cert, queue.Message{ID: "sig-1", Body: body, ContentType: ContentType, Properties: map[string]string{"other": "kept"}})
	if m.Properties["other"] != "kept" || !Signed(m) {
		t.Fatalf("properties after signing: %v", m.Properties)
	}
	site, err := v.Verify(m, time.Now())
	if err != nil || site != "site-1" {
		t.Fatalf("valid message: site %q, %v", site, err)
	}
	// The SPIFFE ID is read as auth reads it.
	if want, err := auth.SiteFromCert(cert); err != nil || want != site {
		t.Errorf("auth reads %q (%v), signals %q", want, err, site)
	}

	other := mustCA(t)
	okey, ocert := siteIdentity(t, other, "site-1", nil)
	_, edCert := siteIdentity(t, ca, "site-3", ed25519.NewKeyFromSeed(make([]byte, 32)))
	edKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	if site, err := v.Verify(signed(t, edKey, edCert, m), time.Now()); err != nil || site != "site-3" {
		t.Errorf("ed25519 site key: %q %v", site, err)
	}

	change := func(f func(*queue.Message)) queue.Message {
		c := m
		c.Body = append([]byte(nil), m.Body...)
		c.Properties = map[string]string{}
		for k, val := range m.Properties {
			c.Properties[k] = val
		}
		f(&c)
		return c
	}
	for name, tc := range map[string]struct {
		m      queue.Message
		at     time.Time
		reason string
	}{
		"tampered body":      {m: change(func(c *queue.Message) { c.Body[len(c.Body)-2] ^= 1 }), reason: ReasonBadSignature},
		"another message id": {m: change(func(c *queue.Message) { c.ID = "sig-2" }), reason: ReasonBadSignature},
		"another type":       {m: change(func(c *queue.Message) { c.ContentType = "text/plain" }), reason: ReasonBadSignature},
		"unsigned":           {m: queue.Message{ID: "u", Body: body}, reason: ReasonUnsigned},
		"certificate only":   {m: change(func(c *queue.Message) { delete(c.Properties, PropertySignature) }), reason: ReasonUnsigned},
		"another CA":         {m: signed(t, okey, ocert, m), reason: ReasonUntrustedCertificate},
		"another site's key with this site's certificate": {m: change(func(c *queue.Message) {
			s := signed(t, okey, ocert, *c)
			c.Properties[PropertySignature] = s.Properties[PropertySignature]
		}), reason: ReasonBadSignature},
		"expired when enqueued": {m: m, at: cert.NotAfter.Add(time.Minute), reason: ReasonUntrustedCertificate},
		"not base64":            {m: change(func(c *queue.Message) { c.Properties[PropertySignature] = "%%" }), reason: ReasonBadSignature},
		"oversize signature":    {m: change(func(c *queue.Message) { c.Properties[PropertySignature] = strings.Repeat("A", MaxSignatureProperty+4) }), reason: ReasonBadSignature},
		"oversize certificate": {m: change(func(c *queue.Message) {
			c.Properties[PropertyCertificate] = strings.Repeat("A", MaxCertificateProperty+4)
		}), reason: ReasonBadSignature},
		"not a certificate": {m: change(func(c *queue.Message) {
			c.Properties[PropertyCertificate] = base64.StdEncoding.EncodeToString([]byte("junk"))
		}), reason: ReasonBadCertificate},
		"the CA itself": {m: change(func(c *queue.Message) {
			c.Properties[PropertyCertificate] = base64.StdEncoding.EncodeToString(ca.Cert.Raw)
		}), reason: ReasonBadCertificate},
	} {
		at := tc.at
		if at.IsZero() {
			at = time.Now()
		}
		_, err := v.Verify(tc.m, at)
		if got := ReasonOf(err); got != tc.reason {
			t.Errorf("%s: %v (reason %q), want %s", name, err, got, tc.reason)
		}
	}

	// A certificate verified once is cached, but never beyond its validity,
	// and the signature is checked on every message.
	if _, err := v.Verify(m, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(m, cert.NotBefore.Add(-time.Minute)); ReasonOf(err) != ReasonUntrustedCertificate {
		t.Errorf("cached certificate before its validity: %v", err)
	}
	forged := change(func(c *queue.Message) {
		c.Properties[PropertySignature] = signed(t, okey, ocert, *c).Properties[PropertySignature]
	})
	if _, err := v.Verify(forged, time.Now()); ReasonOf(err) != ReasonBadSignature {
		t.Errorf("cached certificate, another key's signature: %v", err)
	}

	revoked[cert.SerialNumber.Text(16)] = true
	if _, err := v.Verify(m, time.Now()); ReasonOf(err) != ReasonRevokedCertificate || !strings.Contains(err.Error(), "site-1") {
		t.Errorf("revoked: %v", err)
	}
	if _, err := (&SiteVerifier{}).Verify(m, time.Now()); ReasonOf(err) != ReasonUntrustedCertificate {
		t.Errorf("no roots: %v", err)
	}
}

// The sender signs each message with the key current at send time: a
// renewal between two sends is picked up.
func TestSignedSender(t *testing.T) {
	ca := mustCA(t)
	k1, c1 := siteIdentity(t, ca, "site-1", nil)
	k2, c2 := siteIdentity(t, ca, "site-1", nil)
	q, err := queue.Open(t.TempDir()+"/q.db", queue.Options{Name: "signals"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cur := 1
	s := &SignedSender{Next: q, Key: func() (crypto.Signer, []byte, error) {
		switch cur {
		case 1:
			return k1, c1.Raw, nil
		case 2:
			return k2, c2.Raw, nil
		}
		return nil, nil, errors.New("renewing")
	}}
	ctx := context.Background()
	body := encode(t, validMessage())
	for i, id := range []string{"a", "b"} {
		cur = i + 1
		if err := s.Send(ctx, queue.Message{ID: id, Body: body, ContentType: ContentType}); err != nil {
			t.Fatal(err)
		}
	}
	cur = 3
	if err := s.Send(ctx, queue.Message{ID: "c", Body: body}); err == nil || !strings.Contains(err.Error(), "renewing") {
		t.Errorf("no key: %v", err)
	}
	ds, err := q.Receive(ctx, 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("received %d, %v", len(ds), err)
	}
	v := &SiteVerifier{Roots: ca.Pool()}
	for i, d := range ds {
		if site, err := v.Verify(d.Message, d.EnqueuedAt); err != nil || site != "site-1" {
			t.Errorf("message %s: %q %v", d.ID, site, err)
		}
		want := []*x509.Certificate{c1, c2}[i]
		if d.Properties[PropertyCertificate] != base64.StdEncoding.EncodeToString(want.Raw) {
			t.Errorf("message %s carries another certificate than the one current at its send", d.ID)
		}
	}
}

// FuzzSiteSignature: any signature and certificate properties are decoded
// within their bounds and refused with a reason, never accepted and never
// a panic.
func FuzzSiteSignature(f *testing.F) {
	ca := mustCA(f)
	key, cert := siteIdentity(f, ca, "site-1", nil)
	m := signed(f, key, cert, queue.Message{ID: "sig-1", Body: []byte(`{"x":1}`)})
	f.Add(m.Properties[PropertySignature], m.Properties[PropertyCertificate], []byte(`{"x":2}`))
	f.Add("", "", []byte{})
	f.Add("AAAA", base64.StdEncoding.EncodeToString(ca.Cert.Raw), []byte(`{}`))
	v := &SiteVerifier{Roots: ca.Pool()}
	f.Fuzz(func(t *testing.T, sig, crt string, body []byte) {
		msg := queue.Message{ID: "sig-1", Body: body, Properties: map[string]string{PropertySignature: sig, PropertyCertificate: crt}}
		site, err := v.Verify(msg, time.Now())
		if err == nil {
			// Only the signed body under the site's own certificate (the
			// signature may be another encoding of a valid one).
			_, c, _ := DecodeSignature(msg)
			if string(body) != `{"x":1}` || !c.Equal(cert) || site != "site-1" {
				t.Fatalf("accepted as %q: body %q", site, body)
			}
			return
		}
		if ReasonOf(err) == "" {
			t.Fatalf("refused without a reason: %v", err)
		}
	})
}

// A site CA of your own PKI may issue RSA site certificates: they sign
// (PKCS #1 v1.5, SHA-256) from 2048 bits on.
func TestSiteSignatureRSA(t *testing.T) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plant PKI"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	leaf := func(bits int) (*rsa.PrivateKey, *x509.Certificate) {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("spiffe://modelfleet/site/site-9")
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(bits)), Subject: pkix.Name{CommonName: "site-9"}, URIs: []*url.URL{u},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return k, c
	}
	v := &SiteVerifier{Roots: roots}
	k, c := leaf(2048)
	m := signed(t, k, c, queue.Message{ID: "r", Body: []byte(`{}`)})
	if site, err := v.Verify(m, now); err != nil || site != "site-9" {
		t.Fatalf("RSA-2048: %q %v", site, err)
	}
	m.Body = []byte(`{ }`)
	if _, err := v.Verify(m, now); ReasonOf(err) != ReasonBadSignature {
		t.Errorf("RSA-2048, tampered: %v", err)
	}
	k, c = leaf(1024)
	if err := Sign(&queue.Message{ID: "r"}, k, c.Raw); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Errorf("RSA-1024 signs: %v", err)
	}
}
