package app

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// A gateway given its own site CA (--site-ca-cert/--site-ca-key) and that
// CA's CRL file (--site-crl-file): a site whose certificate a new CRL
// lists is refused at the gateway once the file is re-read, and what it
// signed is dead-lettered by the monitor as RevokedCertificate; the other
// site is unaffected.
func TestSiteCRLsAtTheGatewayAndMonitor(t *testing.T) {
	dir := t.TempDir()
	byo := filepath.Join(dir, "plant-pki")
	ca, err := auth.OpenCA(byo) // the plant's CA: its files are given to the gateway
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(byo, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(kb)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	crl := func(number int64, serials ...*big.Int) []byte {
		tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour)}
		for _, s := range serials {
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
		}
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, k.(crypto.Signer))
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	crlFile := filepath.Join(dir, "crls", "site-ca.crl")
	if err := os.MkdirAll(filepath.Dir(crlFile), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if err := os.WriteFile(crlFile+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(crlFile+".tmp", crlFile); err != nil {
			t.Fatal(err)
		}
	}
	write(crl(1))

	serviceBus, err := queue.Open(filepath.Join(dir, "servicebus.db"), queue.Options{Name: "edge-signals"})
	if err != nil {
		t.Fatal(err)
	}
	defer serviceBus.Close()
	idle, err := queue.Open(filepath.Join(dir, "idle.db"), queue.Options{Name: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	gw, err := OpenGateway(GatewayConfig{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Orchestrator: &orchestratortest.Fake{},
		Signals: idle, SignalRelay: serviceBus,
		Auth: &AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(dir, "credentials"),
			SiteCACertFile: filepath.Join(byo, "ca.crt"), SiteCAKeyFile: filepath.Join(byo, "ca.key"),
			SiteCRLFiles: []string{crlFile}, SiteCRLPoll: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	clients, senders, serials := map[string]*http.Client{}, map[string]queue.Sender{}, map[string]*big.Int{}
	for _, site := range []string{"site-1", "site-2"} {
		tok, err := gw.JoinToken(site, nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		idDir := filepath.Join(dir, site)
		id, err := agent.Enroll(context.Background(), gw.URL(), tok, idDir)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := id.Transport()
		if err != nil {
			t.Fatal(err)
		}
		clients[site] = &http.Client{Transport: tr}
		senders[site] = &signals.SignedSender{Next: &queue.Client{BaseURL: gw.URL(), Queue: agent.SignalQueue, HTTPClient: clients[site]}, Key: keyFromDisk(t, idDir)}
		b, err := os.ReadFile(filepath.Join(idDir, "site.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cb, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(string(c.RawIssuer), string(ca.Cert.RawSubject)) {
			t.Fatal("the site certificate is not the plant CA's")
		}
		serials[site] = c.SerialNumber
	}
	desired := func(site string) int {
		resp, err := clients[site].Get(gw.URL() + "/api/sites/" + site + "/desired?wait=0s")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, site := range []string{"site-1", "site-2"} {
		if code := desired(site); code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Fatalf("%s before any revocation: %d", site, code)
		}
	}
	ctx := context.Background()
	window := func(site string, minute int) queue.Message {
		start := time.Date(2030, 1, 1, 10, minute, 0, 0, time.UTC)
		m := signals.Message{
			SchemaVersion: signals.SchemaVersion, MessageID: signals.MessageID(site, "m", "1", start),
			Site: site, Model: "m", Version: "1", WindowStart: start, WindowEnd: start.Add(time.Minute),
			LatencyMs: make([]int64, signals.NumLatencyBuckets),
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return queue.Message{ID: m.MessageID + "/" + site, Body: b, ContentType: signals.ContentType}
	}
	// Signed by site-1 while it is valid; the CRL revoking it arrives
	// before the monitor reads the message.
	if err := senders["site-1"].Send(ctx, window("site-1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := senders["site-2"].Send(ctx, window("site-2", 1)); err != nil {
		t.Fatal(err)
	}
	write(crl(2, serials["site-1"]))
	deadline := time.Now().Add(15 * time.Second)
	for desired("site-1") != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("the gateway never refused site-1 after its CRL listed it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := desired("site-2"); code == http.StatusUnauthorized {
		t.Fatal("site-2 refused: it is not listed")
	}
	consume(t, serviceBus, gw.Monitor, 2)
	dead, err := serviceBus.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != window("site-1", 0).ID || dead[0].DeadLetterReason != signals.ReasonRevokedCertificate {
		t.Fatalf("dead letters %+v, want site-1's message as %s", dead, signals.ReasonRevokedCertificate)
	}
	if st := gw.Monitor.Stats(); st.Received != 1 {
		t.Errorf("monitor %+v: want site-2's message received", st)
	}
	// A CRL file another CA signed is refused; site-1 stays revoked.
	other, err := auth.OpenCA(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	write(other.Bundle) // not a CRL at all
	time.Sleep(50 * time.Millisecond)
	if code := desired("site-1"); code != http.StatusUnauthorized {
		t.Fatalf("a broken CRL file lifted the revocation: %d", code)
	}
}
