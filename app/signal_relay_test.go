package app

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/agent"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// TestSignalRelayToServiceBus is Azure mode with an embedded queue
// standing in for the Service Bus queue: enrolled sites send their signed
// signal messages to the gateway over mTLS, the gateway relays them with
// its own credential, and its drift monitor, which trusts no stamp there,
// takes only what a site signed about itself with a certificate that is
// not revoked.
func TestSignalRelayToServiceBus(t *testing.T) {
	dir := t.TempDir()
	serviceBus, err := queue.Open(filepath.Join(dir, "servicebus.db"), queue.Options{Name: "edge-signals"})
	if err != nil {
		t.Fatal(err)
	}
	defer serviceBus.Close()
	// The gateway's own monitor reads an idle queue; the test drives the
	// same monitor over the relayed queue, so it knows when all was read.
	idle, err := queue.Open(filepath.Join(dir, "idle.db"), queue.Options{Name: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	gw, err := OpenGateway(GatewayConfig{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway"), Orchestrator: &orchestratortest.Fake{},
		Signals: idle, SignalRelay: serviceBus,
		Auth: &AuthConfig{DevIssuer: true, CredentialsDir: filepath.Join(dir, "credentials")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if gw.Signals != nil {
		t.Fatal("the gateway opened an embedded queue in Azure mode")
	}
	send := map[string]queue.Sender{}      // signed, through the relay
	unsigned := map[string]*queue.Client{} // the same site, unsigned
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
		c := &queue.Client{BaseURL: gw.URL(), Queue: agent.SignalQueue, HTTPClient: &http.Client{Transport: tr}}
		unsigned[site] = c
		send[site] = &signals.SignedSender{Next: c, Key: keyFromDisk(t, idDir)}
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
	for _, s := range []struct {
		via queue.Sender
		m   queue.Message
	}{
		{send["site-1"], window("site-1", 0)},
		{send["site-2"], window("site-1", 1)}, // site-2 speaking for site-1
		{unsigned["site-1"], window("site-1", 2)},
	} {
		if err := s.via.Send(ctx, s.m); err != nil {
			t.Fatal(err)
		}
	}
	consume(t, serviceBus, gw.Monitor, 3)
	// A revoked certificate: what it signed is refused from then on.
	if err := send["site-1"].Send(ctx, window("site-1", 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.sec.enrol.Revoke(context.Background(), "site-1"); err != nil {
		t.Fatal(err)
	}
	consume(t, serviceBus, gw.Monitor, 1)

	dead, err := serviceBus.Peek(0, 10, true)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range dead {
		got[d.ID] = d.DeadLetterReason
		if d.Properties[SiteProperty] == "" {
			t.Errorf("%s was relayed without the gateway's stamp", d.ID)
		}
	}
	want := map[string]string{
		window("site-1", 1).ID: "SiteMismatch",
		window("site-1", 2).ID: signals.ReasonUnsigned,
		window("site-1", 3).ID: signals.ReasonRevokedCertificate,
	}
	for id, reason := range want {
		if got[id] != reason {
			t.Errorf("%s: dead-lettered with %q, want %q", id, got[id], reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("dead letters %v, want %v", got, want)
	}
	if st := gw.Monitor.Stats(); st.Received != 1 || st.Rejected != 3 {
		t.Errorf("monitor %+v: want the one valid message received", st)
	}
}

// consume runs the gateway's monitor over q until it handled n messages
// and Consume settled them.
func consume(t *testing.T, q queue.Receiver, m *Monitor, n int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var handled atomic.Int64
	all := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- queue.Consume(ctx, q, func(ctx context.Context, d queue.Delivery) error {
			err := m.Handle(ctx, d)
			if handled.Add(1) == n {
				close(all)
			}
			return err
		}, queue.ConsumeOptions{})
	}()
	<-all
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// keyFromDisk signs with the identity a site keeps on disk, as the agent
// does (agent/signal_identity.go).
func keyFromDisk(t *testing.T, idDir string) signals.SiteKey {
	certPEM, err := os.ReadFile(filepath.Join(idDir, "site.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(idDir, "site.key"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return func() (crypto.Signer, []byte, error) { return c.PrivateKey.(crypto.Signer), c.Certificate[0], nil }
}
