package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// issue stores a site identity in dir with a certificate the control
// plane's site CA issued for a fresh key, as enrolment and renewal do.
func issue(t *testing.T, ca *auth.CA, id *Identity) {
	t.Helper()
	keyPEM, csrPEM, err := newKeyAndCSR(id.site)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueSite(id.site, csrPEM, auth.DefaultSiteCertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.store(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}

// TestSignalsAreSignedWithTheSiteIdentity: what the agent sends carries its
// site's signature, by the key current at the send (a renewal swaps it),
// and a site enrolled earlier signs with the identity on disk.
func TestSignalsAreSignedWithTheSiteIdentity(t *testing.T) {
	ca, err := auth.OpenCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	id := &Identity{dir: identityDir(data), site: "site-1", ca: ca.Bundle}
	issue(t, ca, id)
	q, err := queue.Open(filepath.Join(t.TempDir(), "q.db"), queue.Options{Name: SignalQueue})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s := &edgeSignals{log: slog.New(slog.DiscardHandler)}
	cfg := Config{SiteID: "site-1", DataDir: data}
	ctx := context.Background()

	send := s.signedQueue(cfg, id, q)
	if err := send.Send(ctx, queue.Message{ID: "a", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	first := id.leaf
	issue(t, ca, id) // renewal: a new key and certificate
	if err := send.Send(ctx, queue.Message{ID: "b", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// Loaded from disk when Run had none (no gateway to pull from).
	if err := s.signedQueue(cfg, nil, q).Send(ctx, queue.Message{ID: "c", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// Not enrolled: unsigned.
	other := Config{SiteID: "site-2", DataDir: t.TempDir()}
	if got := s.signedQueue(other, nil, q); got != queue.Sender(q) {
		t.Errorf("a site without an identity wraps its queue in %T", got)
	}

	ds, err := q.Receive(ctx, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("received %d: %v", len(ds), err)
	}
	v := &signals.SiteVerifier{Roots: ca.Pool()}
	for i, d := range ds {
		site, err := v.Verify(d.Message, d.EnqueuedAt)
		if err != nil || site != "site-1" {
			t.Errorf("message %s: site %q, %v", d.ID, site, err)
		}
		_, cert, _ := signals.DecodeSignature(d.Message)
		if renewed := !cert.Equal(first); renewed != (i > 0) {
			t.Errorf("message %s signed with the renewed certificate: %v", d.ID, renewed)
		}
	}
}
