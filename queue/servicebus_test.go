package queue

// No Service Bus namespace is reachable from tests: these check the mapping
// and the failure paths that need no broker (see servicebus.go).

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/modelfleet/modelfleet"
)

func TestFromServiceBus(t *testing.T) {
	enq := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	until := enq.Add(time.Minute)
	ct := "application/json"
	seq := int64(42)
	m := &azservicebus.ReceivedMessage{
		MessageID:     "sig-1",
		Body:          []byte(`{"x":1}`),
		ContentType:   &ct,
		DeliveryCount: 3,
		LockToken:     [16]byte{0xde, 0xad, 0xbe, 0xef, 15: 0x01},
		LockedUntil:   &until,
		EnqueuedTime:  &enq,
		ApplicationProperties: map[string]any{
			"site":  "s1",
			"count": int64(7),
			"ok":    true,
			"at":    enq,
		},
		SequenceNumber: &seq,
	}
	d := fromServiceBus(m)
	if d.ID != "sig-1" || string(d.Body) != `{"x":1}` || d.ContentType != ct || d.DeliveryCount != 3 || d.SequenceNumber != 42 {
		t.Errorf("delivery %+v", d)
	}
	if d.LockToken != "deadbeef000000000000000000000001" {
		t.Errorf("lock token %q, want the hex of the 16 bytes", d.LockToken)
	}
	if !d.LockedUntil.Equal(until) || d.LockedUntil.Location() != time.UTC || !d.EnqueuedAt.Equal(enq) {
		t.Errorf("times %v %v", d.LockedUntil, d.EnqueuedAt)
	}
	want := map[string]string{"site": "s1", "count": "7", "ok": "true", "at": "2026-03-01T11:00:00Z"}
	for k, v := range want {
		if d.Properties[k] != v {
			t.Errorf("property %s = %q, want %q", k, d.Properties[k], v)
		}
	}

	// A minimal message (no optional fields) maps without panicking.
	d = fromServiceBus(&azservicebus.ReceivedMessage{MessageID: "x"})
	if d.ID != "x" || d.Properties != nil || !d.LockedUntil.IsZero() || d.SequenceNumber != 0 {
		t.Errorf("minimal delivery %+v", d)
	}
}

func TestToServiceBus(t *testing.T) {
	m := toServiceBus(Message{ID: "a", Body: []byte("b"), ContentType: "text/plain", Properties: map[string]string{"k": "v"}})
	if *m.MessageID != "a" || string(m.Body) != "b" || *m.ContentType != "text/plain" || m.ApplicationProperties["k"] != "v" {
		t.Errorf("message %+v", m)
	}
	m = toServiceBus(Message{ID: "a"})
	if m.ContentType != nil || m.ApplicationProperties != nil {
		t.Errorf("empty optional fields sent as %+v", m)
	}
}

func TestServiceBusErrorCodes(t *testing.T) {
	for code, want := range map[azservicebus.Code]string{
		azservicebus.CodeLockLost:           modelfleet.ECONFLICT,
		azservicebus.CodeUnauthorizedAccess: modelfleet.EUNAUTHORIZED,
		azservicebus.CodeNotFound:           modelfleet.ENOTFOUND,
		azservicebus.CodeConnectionLost:     modelfleet.EINTERNAL,
		azservicebus.CodeTimeout:            modelfleet.EINTERNAL,
	} {
		err := serviceBusError("complete", &azservicebus.Error{Code: code})
		if got := modelfleet.ErrorCode(err); got != want {
			t.Errorf("%s maps to %s, want %s", code, got, want)
		}
	}
	if err := serviceBusError("receive", &azservicebus.Error{Code: azservicebus.CodeClosed}); !errors.Is(err, ErrClosed) || !fatalReceive(err) {
		t.Errorf("closed maps to %v", err)
	}
	if err := serviceBusError("receive", errors.New("dial tcp: i/o timeout")); fatalReceive(err) {
		t.Errorf("a network error is fatal: %v", err)
	}
}

// Settling what this receiver does not hold (never received, already
// settled, or held past its lock) is a lost lock, without a round trip.
func TestServiceBusReceiverUnknownToken(t *testing.T) {
	r := &ServiceBusReceiver{held: map[string]*heldMessage{}}
	d := Delivery{Message: Message{ID: "a"}, LockToken: "00112233445566778899aabbccddeeff"}
	ctx := context.Background()
	for name, err := range map[string]error{
		"complete":    r.Complete(ctx, d),
		"abandon":     r.Abandon(ctx, d),
		"dead-letter": r.DeadLetter(ctx, d, "r", "d"),
		"renew":       r.RenewLock(ctx, &d),
	} {
		if modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
			t.Errorf("%s: %v, want conflict", name, err)
		}
	}
	if _, err := r.Receive(ctx, 0); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("receive 0: %v", err)
	}
}

func TestNewServiceBusClientBadConnectionString(t *testing.T) {
	for _, cs := range []string{
		"",
		"not a connection string",
		"Endpoint=sb://example.servicebus.windows.net/",                                // no key
		"Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=RootManage", // no key value
	} {
		_, err := NewServiceBusClient(cs)
		if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "connection string is invalid") {
			t.Errorf("NewServiceBusClient(%q): %v, want a clear invalid error", cs, err)
		}
	}
	// A well-formed string builds a client (it dials lazily) and a
	// receiver and sender; nothing is reachable, so nothing more is tried.
	c, err := NewServiceBusClient("Endpoint=sb://example.invalid/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServiceBusReceiver(c, "signals"); err != nil {
		t.Errorf("receiver: %v", err)
	}
	s, err := NewServiceBusSender(c, "signals")
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	// The sender validates like the embedded queue, before any network.
	if err := s.Send(context.Background(), Message{Body: []byte("x")}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("send without id: %v", err)
	}
	if err := s.Send(context.Background(), Message{ID: "a", Body: make([]byte, DefaultMaxMessageBytes)}); modelfleet.ErrorCode(err) != modelfleet.ETOOLARGE {
		t.Errorf("oversize send: %v", err)
	}
}

// tokenCredential is an Entra credential that never hands out a token:
// nothing here dials (the SDK connects at the first send or receive).
type tokenCredential struct{}

func (tokenCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no token offline")
}

func TestNewServiceBusNamespaceClient(t *testing.T) {
	for _, ns := range []string{
		"",
		"plant-fleet", // not fully qualified
		"sb://plant-fleet.servicebus.windows.net/",                         // a URL
		"plant-fleet.servicebus.windows.net:5671",                          // a port
		"plant_fleet.servicebus.windows.net",                               // not a host name
		"-plant.servicebus.windows.net",                                    // hyphen-edged label
		"plant..servicebus.windows.net",                                    // empty label
		strings.Repeat("a", 64) + ".windows.net",                           // label too long
		strings.Repeat("a.", 130) + "net",                                  // name too long
		"Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey=c2VjcmV0", // a connection string
	} {
		_, err := NewServiceBusNamespaceClient(ns, tokenCredential{})
		if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "fully qualified namespace") {
			t.Errorf("namespace %q: %v, want a clear invalid error", ns, err)
		}
		if strings.Contains(ns, "c2VjcmV0") && strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("the error repeats a key: %v", err)
		}
	}
	if _, err := NewServiceBusNamespaceClient("plant-fleet.servicebus.windows.net", nil); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("no credential: %v", err)
	}
	c, err := NewServiceBusNamespaceClient("plant-fleet.servicebus.windows.net", tokenCredential{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServiceBusReceiver(c, "signals"); err != nil {
		t.Errorf("receiver: %v", err)
	}
	s, err := NewServiceBusSender(c, "signals")
	if err != nil {
		t.Fatalf("sender: %v", err)
	}
	if err := s.Send(context.Background(), Message{Body: []byte("x")}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("send without id: %v", err)
	}
}

// A site's signature and certificate travel as string application
// properties of a few KiB: they reach the receiver byte for byte.
func TestServiceBusCarriesSiteSignatures(t *testing.T) {
	props := map[string]string{
		"modelfleet-signature":   strings.Repeat("MEUCIQ+/", 32),
		"modelfleet-certificate": strings.Repeat("MIIB+/==", 1024),
		"modelfleet-site":        "site-1",
	}
	out := toServiceBus(Message{ID: "sig-1", Body: []byte(`{}`), ContentType: "application/json", Properties: props})
	d := fromServiceBus(&azservicebus.ReceivedMessage{MessageID: *out.MessageID, Body: out.Body, ContentType: out.ContentType, ApplicationProperties: out.ApplicationProperties})
	for k, v := range props {
		if d.Properties[k] != v {
			t.Errorf("property %s changed on its way through Service Bus", k)
		}
	}
	if d.ContentType != "application/json" || d.ID != "sig-1" {
		t.Errorf("delivery %+v", d.Message)
	}
}

// FuzzServiceBusNamespace: any namespace is accepted only as a fully
// qualified host name, or refused as invalid without being repeated.
func FuzzServiceBusNamespace(f *testing.F) {
	for _, s := range []string{"plant-fleet.servicebus.windows.net", "sb://x.y/", "a.b:5671", "Endpoint=sb://x;SharedAccessKey=k", "a..b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ns string) {
		err := validNamespace(ns)
		if err == nil {
			if len(ns) > maxNamespaceLength || !strings.Contains(ns, ".") || strings.ContainsAny(ns, ":/;=@ ") {
				t.Fatalf("accepted %q", ns)
			}
			return
		}
		// The message is one of a few fixed ones: nothing of the input
		// (a pasted connection string holds a key) comes back.
		if modelfleet.ErrorCode(err) != modelfleet.EINVALID || strings.Contains(err.Error(), "SharedAccessKey") || strings.ContainsAny(err.Error(), ";=\x00") {
			t.Fatalf("%q: %v", ns, err)
		}
	})
}
