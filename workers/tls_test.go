package workers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// ca is a test certificate authority.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64

func newCA(t *testing.T, name string) *ca {
	t.Helper()
	key := mustKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and key in PEM: a server certificate
// for dnsNames, or a client certificate when dnsNames is empty.
func (c *ca) issue(t *testing.T, cn string, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key := mustKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, DNSNames: dnsNames,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(dnsNames) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// frontend is a Temporal frontend as far as dialing goes: the real
// WorkflowService over gRPC, behind TLS that requires a client certificate
// signed by its CA. It records who called.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	mu      sync.Mutex
	callers []string // client certificate CNs
	auth    []string // authorization metadata
}

func (f *frontend) GetSystemInfo(ctx context.Context, _ *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			f.callers = append(f.callers, ti.State.PeerCertificates[0].Subject.CommonName)
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		f.auth = append(f.auth, md.Get("authorization")...)
	}
	return &workflowservice.GetSystemInfoResponse{ServerVersion: "1.29.1", Capabilities: &workflowservice.GetSystemInfoResponse_Capabilities{}}, nil
}

func startFrontend(t *testing.T, serverCA, clientCA *ca) (*frontend, string) {
	t.Helper()
	certPEM, keyPEM := serverCA.issue(t, "temporal frontend", "temporal.modelfleet.test")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})))
	f := &frontend{}
	workflowservice.RegisterWorkflowServiceServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String()
}

func TestDialOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, rogue := newCA(t, "temporal server CA"), newCA(t, "modelfleet client CA"), newCA(t, "someone else")
	f, addr := startFrontend(t, serverCA, clientCA)

	caFile := writeFile(t, dir, "ca.crt", serverCA.pem)
	crt, key := clientCA.issue(t, "modelfleet-worker")
	crtFile, keyFile := writeFile(t, dir, "tls.crt", crt), writeFile(t, dir, "tls.key", key)
	rogueCrt, rogueKey := rogue.issue(t, "intruder")
	rogueCrtFile, rogueKeyFile := writeFile(t, dir, "rogue.crt", rogueCrt), writeFile(t, dir, "rogue.key", rogueKey)
	rogueCAFile := writeFile(t, dir, "rogue-ca.crt", rogue.pem)
	good := TLS{CAFile: caFile, CertFile: crtFile, KeyFile: keyFile, ServerName: "temporal.modelfleet.test"}

	dial := func(t *testing.T, c Connection) error {
		t.Helper()
		c.Address = addr
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		cl, err := c.Dial(ctx, nil)
		if err == nil {
			cl.Close()
		}
		t.Logf("dial took %s: %v", time.Since(start).Round(time.Millisecond), err)
		return err
	}

	t.Run("the right certificates", func(t *testing.T) {
		if err := dial(t, Connection{TLS: good, APIKey: "k-123"}); err != nil {
			t.Fatalf("dial: %v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.callers) == 0 || f.callers[len(f.callers)-1] != "modelfleet-worker" {
			t.Errorf("server saw client certificates %v, want modelfleet-worker", f.callers)
		}
		if len(f.auth) == 0 || f.auth[len(f.auth)-1] != "Bearer k-123" {
			t.Errorf("server saw authorization %v, want the API key as a bearer token", f.auth)
		}
	})

	failures := []struct {
		name string
		c    Connection
		want []string // every one must be in the error
	}{
		{"plaintext", Connection{}, []string{"plaintext; set the TLS options"}},
		{"no client certificate", Connection{TLS: TLS{CAFile: caFile, ServerName: "temporal.modelfleet.test"}},
			[]string{"without a client certificate", "it may require a client certificate"}},
		{"a client certificate from another CA", Connection{TLS: TLS{CAFile: caFile, CertFile: rogueCrtFile, KeyFile: rogueKeyFile, ServerName: "temporal.modelfleet.test"}},
			// TLS 1.3: the server's alert may arrive after the client's
			// first write failed, so what the client reads varies.
			[]string{"rogue.crt", "it may not trust the client certificate's CA"}},
		{"a server the CA did not sign", Connection{TLS: TLS{CAFile: rogueCAFile, CertFile: crtFile, KeyFile: keyFile, ServerName: "temporal.modelfleet.test"}},
			[]string{"certificate signed by unknown authority"}},
		{"the system roots", Connection{TLS: TLS{Enabled: true, CertFile: crtFile, KeyFile: keyFile, ServerName: "temporal.modelfleet.test"}},
			[]string{"certificate signed by unknown authority"}},
		{"the wrong server name", Connection{TLS: TLS{CAFile: caFile, CertFile: crtFile, KeyFile: keyFile}},
			[]string{`server name "127.0.0.1"`, "doesn't contain any IP SANs"}},
	}
	for _, c := range failures {
		t.Run(c.name, func(t *testing.T) {
			err := dial(t, c.c)
			if err == nil {
				t.Fatal("dial succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("files are checked before dialing", func(t *testing.T) {
		for _, c := range []struct {
			tls  TLS
			want string
		}{
			{TLS{CAFile: filepath.Join(dir, "missing.crt")}, "missing.crt"},
			{TLS{CAFile: keyFile}, "holds no PEM certificate"},
			{TLS{CertFile: crtFile}, "both its certificate and its key"},
			{TLS{CertFile: crtFile, KeyFile: rogueKeyFile}, "private key does not match public key"},
		} {
			_, err := c.tls.Config()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Config(%+v) error %v, want one saying %q", c.tls, err, c.want)
			}
		}
	})

	t.Run("a renewed client certificate is used without a restart", func(t *testing.T) {
		rot := t.TempDir()
		c1, k1 := clientCA.issue(t, "before-renewal")
		tl := TLS{CAFile: caFile, CertFile: writeFile(t, rot, "tls.crt", c1), KeyFile: writeFile(t, rot, "tls.key", k1), ServerName: "temporal.modelfleet.test"}
		cfg, err := tl.Config()
		if err != nil {
			t.Fatal(err)
		}
		c2, k2 := clientCA.issue(t, "after-renewal")
		writeFile(t, rot, "tls.crt", c2)
		writeFile(t, rot, "tls.key", k2)
		got, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(got.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Subject.CommonName != "after-renewal" {
			t.Errorf("handshake offers %q, want the renewed certificate", leaf.Subject.CommonName)
		}
	})
}
