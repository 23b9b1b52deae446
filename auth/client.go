package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// TokenSource returns the bearer token to send now.
type TokenSource func() (string, error)

// StaticToken always sends tok.
func StaticToken(tok string) TokenSource {
	return func() (string, error) { return tok, nil }
}

// FileToken reads the token from path on every request, so a token the
// platform refreshes in place (a projected service-account token, Azure
// workload identity's file) is always current.
func FileToken(path string) TokenSource {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", path)
		}
		return tok, nil
	}
}

// Bearer is a RoundTripper adding "Authorization: Bearer <token>".
type Bearer struct {
	Token TokenSource
	Base  http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (b *Bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := b.Token()
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	base := b.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// TLSTransport is a transport trusting the CAs in caPEM (nil: the system
// roots) and presenting the client certificate cert returns (nil: none).
func TLSTransport(caPEM []byte, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) (*http.Transport, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetClientCertificate: cert}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("no PEM certificate in the CA bundle")
		}
		cfg.RootCAs = pool
	}
	t := BaseTransport()
	t.TLSClientConfig = cfg
	return t, nil
}

// BaseTransport is a fresh copy of http.DefaultTransport's settings
// (proxy from the environment, dial and idle timeouts, HTTP/2). A program
// that replaced http.DefaultTransport with a RoundTripper of its own (a
// metering or tracing wrapper) gets the standard library's defaults.
func BaseTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns an HTTP client for the gateway: trusting caPEM, with
// token (nil: none) as its bearer.
func Client(caPEM []byte, token TokenSource) (*http.Client, error) {
	t, err := TLSTransport(caPEM, nil)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = t
	if token != nil {
		rt = &Bearer{Token: token, Base: t}
	}
	return &http.Client{Transport: rt}, nil
}
