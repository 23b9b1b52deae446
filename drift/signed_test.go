package drift

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// siteSigner is a site's key and the certificate the control plane's site
// CA (auth.CA, as the gateway runs it) issued for it.
type siteSigner struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newSiteSigner(t testing.TB, ca *auth.CA, site string) siteSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: site}}, k)
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := ca.IssueSite(site, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return siteSigner{k, cert}
}

func (s siteSigner) sign(t testing.TB, m queue.Message) queue.Message {
	t.Helper()
	if err := signals.Sign(&m, s.key, s.cert.Raw); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMonitorChecksSiteSignatures runs signal messages through a real
// queue and the monitor's consumer, as the gateway does, and reads what was
// dead-lettered and why: in Azure mode (Sites, no trusted stamp) only a
// message its own site signed is consumed; on the embedded queue the
// gateway's stamp is enough, and a signature beside it must agree.
func TestMonitorChecksSiteSignatures(t *testing.T) {
	fx := newFixture(t)
	ca, err := auth.OpenCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	site1, site2 := newSiteSigner(t, ca, "plant-1"), newSiteSigner(t, ca, "plant-2")
	sites := &signals.SiteVerifier{Roots: ca.Pool()}
	body := fx.window(600, 0) // about plant-1
	msg := func(id string) queue.Message {
		return queue.Message{ID: id, Body: body, ContentType: signals.ContentType}
	}
	tampered := site1.sign(t, msg("tampered"))
	tampered.Body = fx.window(600, 30) // another window, same signature

	for _, tc := range []struct {
		mode string
		opts Options
		in   []queue.Message
		// dead-lettered: message ID -> reason; the rest must be consumed
		dead map[string]string
	}{
		{
			mode: "azure",
			opts: Options{Sites: sites},
			in: []queue.Message{
				site1.sign(t, msg("valid")),
				site2.sign(t, msg("site-2-as-site-1")),
				msg("unsigned"),
				tampered,
				// On Service Bus a stamp proves nothing: anyone allowed to
				// send could have set it.
				{ID: "stamped-only", Body: body, Properties: map[string]string{"modelfleet-site": "plant-1"}},
			},
			dead: map[string]string{
				"site-2-as-site-1": ReasonSiteMismatch,
				"unsigned":         signals.ReasonUnsigned,
				"tampered":         signals.ReasonBadSignature,
				"stamped-only":     signals.ReasonUnsigned,
			},
		},
		{
			mode: "embedded",
			opts: Options{Sites: sites, SenderProperty: "modelfleet-site"},
			in: []queue.Message{
				{ID: "stamped", Body: body, Properties: map[string]string{"modelfleet-site": "plant-1"}},
				stamp(site1.sign(t, msg("signed-and-stamped")), "plant-1"),
				site1.sign(t, msg("signed-only")),
				stamp(site2.sign(t, msg("signed-2-stamped-1")), "plant-1"),
				stamp(tampered, "plant-1"),
				msg("neither"),
			},
			dead: map[string]string{
				"signed-2-stamped-1": ReasonSiteMismatch,
				"tampered":           signals.ReasonBadSignature,
				"neither":            ReasonUnknownSender,
			},
		},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			q, err := queue.Open(filepath.Join(t.TempDir(), "signals.db"), queue.Options{Name: "signals"})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for _, m := range tc.in {
				if err := q.Send(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			m := fx.monitor(nil, tc.opts)
			// Consume settles each message after its handler returned and
			// waits for settlements when stopped: stop it once every
			// message was handled.
			var handled atomic.Int64
			all := make(chan struct{})
			handle := func(ctx context.Context, d queue.Delivery) error {
				err := m.Handle(ctx, d)
				if handled.Add(1) == int64(len(tc.in)) {
					close(all)
				}
				return err
			}
			done := make(chan error, 1)
			go func() { done <- queue.Consume(ctx, q, handle, queue.ConsumeOptions{}) }()
			<-all
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			dead, err := q.Peek(0, 100, true)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, d := range dead {
				got[d.ID] = d.DeadLetterReason
			}
			for id, reason := range tc.dead {
				if got[id] != reason {
					t.Errorf("%s: dead-lettered with %q, want %q", id, got[id], reason)
				}
			}
			if len(got) != len(tc.dead) {
				t.Errorf("dead letters %v, want only %v", got, tc.dead)
			}
			if st := m.Stats(); st.Rejected != int64(len(tc.dead)) || st.Received != int64(len(tc.in)-len(tc.dead)) {
				t.Errorf("monitor stats %+v", st)
			}
		})
	}
}

func stamp(m queue.Message, site string) queue.Message {
	m.Properties["modelfleet-site"] = site
	return m
}
