package workers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/metric"
	"log/slog"
	"net"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
)

// Connection is how a modelfleet process reaches Temporal: where, which
// namespace, and with what transport security. The zero value is the local
// dev server in plaintext.
type Connection struct {
	// Address is the frontend's host:port (default DefaultTemporalAddress).
	Address string
	// Namespace (default DefaultNamespace).
	Namespace string
	// TLS secures the connection; its zero value is plaintext.
	TLS TLS
	// APIKey, if set, is sent as a bearer token on every call (Temporal
	// Cloud API keys); it implies TLS. Read it from the environment or a
	// file, never a flag, and never log it.
	APIKey string
	// Meter, if set, records the Temporal SDK's metrics (workflow and
	// activity task latencies, schedule-to-start, failures, poller and
	// cache figures) and the activities' outcomes by type (ActivityMetric).
	// Nil: no metrics.
	Meter metric.Meter
}

// TLS is the transport security of the connection to Temporal, as files
// (a Kubernetes Secret mounted read-only; see deploy/helm). Any field set
// turns TLS on.
type TLS struct {
	// Enabled turns TLS on with no files: the system roots verify the
	// server (Temporal Cloud) and no client certificate is offered.
	Enabled bool
	// CAFile is a PEM bundle of the CAs that sign the server's certificate
	// (a self-hosted cluster's private CA). Empty: the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, for
	// mutual TLS. Both or neither. They are re-read at every handshake, so
	// a renewed Secret is picked up without a restart.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry, when it
	// differs from the address's host (it is also sent as SNI).
	ServerName string
}

// On reports whether the connection uses TLS.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// Config builds the client's tls.Config, or nil for plaintext. It reads
// every file now so a wrong path or a key that does not match its
// certificate fails at start, naming the file, not at the first call.
func (t TLS) Config() (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("temporal tls: read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal tls: CA bundle %q holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		return nil, errors.New("temporal tls: a client certificate needs both its certificate and its key file")
	default:
		if _, err := t.loadClientCert(); err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.loadClientCert()
		}
	}
	return cfg, nil
}

func (t TLS) loadClientCert() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("temporal tls: client certificate %q and key %q: %w", t.CertFile, t.KeyFile, err)
	}
	return &c, nil
}

// Dial connects to Temporal with the OpenTelemetry tracing interceptor and
// checks the connection works (the SDK's eager GetSystemInfo call), so a
// TLS or authentication problem fails the process at start with a message
// that says which.
func (c Connection) Dial(ctx context.Context, logger *slog.Logger) (client.Client, error) {
	if c.Address == "" {
		c.Address = DefaultTemporalAddress
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	opts, err := c.options(logger)
	if err != nil {
		return nil, err
	}
	cl, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("temporal: dial %s (%s): %w%s", c.Address, c.describe(), err, c.hint(err))
	}
	return cl, nil
}

// describe says how the connection was secured, for error messages: the
// usual cause of a failed dial is a mismatch with what the server wants.
func (c Connection) describe() string {
	var s string
	switch {
	case !c.TLS.On() && c.APIKey == "":
		s = "plaintext; set the TLS options if the server requires TLS"
	case c.TLS.CertFile != "":
		s = fmt.Sprintf("TLS to server name %q with client certificate %s", c.serverHost(), c.TLS.CertFile)
	default:
		s = fmt.Sprintf("TLS to server name %q without a client certificate", c.serverHost())
	}
	if c.APIKey != "" {
		s += ", API key"
	}
	return s
}

// hint names the likely cause when the server dropped the connection at or
// after the handshake: with TLS 1.3 a server that wants a (different)
// client certificate says so in an alert that the client may never read,
// so the client often sees a reset or a broken pipe instead.
func (c Connection) hint(err error) string {
	if !c.TLS.On() {
		return ""
	}
	dropped := false
	for _, s := range []string{"broken pipe", "connection reset", "EOF", "bad certificate", "unknown certificate authority", "certificate required"} {
		dropped = dropped || strings.Contains(err.Error(), s)
	}
	switch {
	case !dropped:
		return ""
	case c.TLS.CertFile == "":
		return " (the server closed the connection: it may require a client certificate)"
	default:
		return " (the server closed the connection: it may not trust the client certificate's CA)"
	}
}

// serverHost is the name the server's certificate is checked against.
func (c Connection) serverHost() string {
	if c.TLS.ServerName != "" {
		return c.TLS.ServerName
	}
	if h, _, err := net.SplitHostPort(c.Address); err == nil {
		return h
	}
	return c.Address
}
