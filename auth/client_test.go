package auth

import (
	"net/http"
	"testing"
)

type wrapped struct{ next http.RoundTripper }

func (w wrapped) RoundTrip(r *http.Request) (*http.Response, error) { return w.next.RoundTrip(r) }

// A program that wraps http.DefaultTransport (a metering or tracing
// RoundTripper) can still build the gateway's TLS transports.
func TestTLSTransportWithAWrappedDefaultTransport(t *testing.T) {
	orig := http.DefaultTransport
	http.DefaultTransport = wrapped{orig}
	defer func() { http.DefaultTransport = orig }()
	tr, err := TLSTransport(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Proxy == nil || tr.DialContext == nil || tr.TLSHandshakeTimeout == 0 {
		t.Fatalf("transport lacks the standard defaults: %+v", tr)
	}
}
