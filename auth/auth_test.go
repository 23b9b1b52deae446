package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func TestParseBindingsIsStrict(t *testing.T) {
	ok := "apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n"
	if _, err := ParseBindings([]byte(ok + "  - {role: approver, groups: [leads], scope: {plant: a}}\n")); err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"unknown key":      ok + "  - {role: viewer, subjects: [a], subject: b}\n",
		"unknown role":     ok + "  - {role: god, subjects: [a]}\n",
		"binds nobody":     ok + "  - {role: viewer}\n",
		"scoped viewer":    ok + "  - {role: viewer, subjects: [a], scope: {plant: a}}\n",
		"site from a file": ok + "  - {role: site, subjects: [a]}\n",
		"empty subject":    ok + "  - {role: viewer, subjects: [\"\"]}\n",
		"wrong kind":       "apiVersion: modelfleet.dev/v1\nkind: Bindings\n",
		"wrong version":    "apiVersion: v0\nkind: RoleBindings\n",
		"bad scope label":  ok + "  - {role: approver, subjects: [a], scope: {\"a b\": x}}\n",
		"not yaml":         "{{{",
		"over a megabyte":  ok + strings.Repeat("#", MaxBindingsSize),
	} {
		if _, err := ParseBindings([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseBindings(f *testing.F) {
	f.Add([]byte("apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n  - {role: approver, groups: [g], appRoles: [r], scope: {plant: a}}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bd, err := ParseBindings(b)
		if err == nil {
			_ = bd.Grants(&Principal{Subject: "a", Groups: []string{"g"}})
		}
	})
}

func TestJoinTokens(t *testing.T) {
	e, err := OpenEnrolments(filepath.Join(t.TempDir(), "enrolments.json"))
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Repeat("ab", 32)
	tok, _, err := e.NewJoinToken(bg, "site-1", map[string]string{"plant": "a"}, time.Hour, "admin", fp)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseJoinToken(tok.String())
	if err != nil || parsed != tok {
		t.Fatalf("round trip: %+v, %v", parsed, err)
	}
	// For another site: refused, and not spent.
	if _, err := e.Redeem(bg, JoinToken{Site: "site-2", Secret: tok.Secret}); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
		t.Errorf("another site: %v", err)
	}
	labels, err := e.Redeem(bg, parsed)
	if err != nil || labels["plant"] != "a" {
		t.Fatalf("redeem: %v, %v", labels, err)
	}
	if _, err := e.Redeem(bg, parsed); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
		t.Errorf("second use: %v", err)
	}
	// Expired.
	old, _, _ := e.NewJoinToken(bg, "site-3", nil, time.Nanosecond, "admin", fp)
	time.Sleep(time.Millisecond)
	if _, err := e.Redeem(bg, old); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}
	if _, _, err := e.NewJoinToken(bg, "site-4", nil, 30*24*time.Hour, "admin", fp); err == nil {
		t.Error("a month-long token was made")
	}
	// A revoked site's pending token dies with it; the store survives a
	// reopen.
	pending, _, _ := e.NewJoinToken(bg, "site-5", nil, time.Hour, "admin", fp)
	_ = e.Issued(bg, "site-5", "abc", "")
	if n, err := e.Revoke(bg, "site-5"); n != 1 || err != nil {
		t.Errorf("revoke: %d, %v", n, err)
	}
	e2, err := OpenEnrolments(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if !e2.IsRevoked("abc") {
		t.Error("revocation lost on reopen")
	}
	if _, err := e2.Redeem(bg, pending); err == nil {
		t.Error("a revoked site's pending token still enrols it")
	}
	for _, bad := range []string{"", "mfjoin1.site-1", "mfjoin2.a.b.c", "mfjoin1.../..x.y", "mfjoin1.site-1.short." + fp} {
		if _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("ParseJoinToken(%q) accepted", bad)
		}
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add("mfjoin1.site-1." + strings.Repeat("A", 43) + "." + strings.Repeat("ab", 32))
	f.Fuzz(func(t *testing.T, s string) { _, _ = ParseJoinToken(s) })
}

func csr(t *testing.T, cn string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"evil.example"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSiteCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := OpenCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := OpenCA(dir)
	if err != nil || again.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("reopened CA differs: %v", err)
	}
	// Whatever the request asks, the certificate names the site the
	// token was for, for client authentication only.
	_, c, err := ca.IssueSite("site-1", csr(t, "site-2"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if site, err := SiteFromCert(c); err != nil || site != "site-1" {
		t.Errorf("site = %q, %v", site, err)
	}
	if len(c.DNSNames) != 0 || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("certificate names %v, usages %v", c.DNSNames, c.ExtKeyUsage)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("does not verify against the CA: %v", err)
	}
	for name, req := range map[string][]byte{"empty": nil, "not PEM": []byte("x"), "certificate": ca.Bundle, "huge": make([]byte, 17<<10)} {
		if _, _, err := ca.IssueSite("site-1", req, time.Hour); err == nil {
			t.Errorf("%s request: issued", name)
		}
	}
	// A trust bundle alone verifies but does not issue.
	trust, err := LoadCA(filepath.Join(dir, "ca.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := trust.IssueSite("site-1", csr(t, "x"), time.Hour); err == nil {
		t.Error("a verify-only CA issued")
	}
}

func TestScope(t *testing.T) {
	a := []Grant{{Role: RoleApprover, Scope: map[string]string{"plant": "a"}}}
	if !InScope(a, []map[string]string{{"plant": "a", "line": "1"}}) {
		t.Error("in scope refused")
	}
	if InScope(a, []map[string]string{{"plant": "a"}, {"plant": "b"}}) {
		t.Error("a wave with a site out of scope allowed")
	}
	if InScope(nil, nil) {
		t.Error("no grant allowed")
	}
	if !InScope([]Grant{{Role: RoleApprover}}, []map[string]string{{"plant": "z"}}) {
		t.Error("an unscoped approver refused")
	}
}

// Gateway replicas starting at once on one empty PKI directory end up with
// one site CA: OpenCA creates it under a lock and looks again under it.
func TestOpenCAOnceAcrossConcurrentStarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	const n = 8
	bundles := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ca, err := OpenCA(dir)
			if err == nil {
				bundles[i] = ca.Bundle
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(bundles[i], bundles[0]) {
			t.Fatalf("start %d has another CA than start 0", i)
		}
	}
}
