package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/edge"
	"github.com/modelfleet/modelfleet/httpjson"
)

// Identity is a site's enrolled identity: its private key (generated at
// the site, never sent), the certificate the control plane's site CA
// issued for it, and the CA bundle it verifies the gateway with. It lives
// in <data dir>/identity and is renewed in place.
type Identity struct {
	dir  string
	site string
	mu   sync.Mutex
	cert *tls.Certificate
	leaf *x509.Certificate
	ca   []byte
	// releaseKeys are what the gateway gave at the last enrolment or
	// renewal (the site pins them: trust.go).
	releaseKeys *modelfleet.Trust
}

// identityDir is where a site keeps its identity.
func identityDir(dataDir string) string { return filepath.Join(dataDir, "identity") }

// LoadIdentity reads the identity in dir, or returns nil if the site has
// not enrolled.
func LoadIdentity(dir, site string) (*Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, "site.crt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "site.key"))
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	id := &Identity{dir: dir, site: site, ca: ca}
	return id, id.set(certPEM, keyPEM)
}

func (id *Identity) set(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("site identity: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return err
	}
	if s, err := auth.SiteFromCert(leaf); err != nil || s != id.site {
		return fmt.Errorf("site identity in %s is for site %q, not %q", id.dir, s, id.site)
	}
	id.mu.Lock()
	id.cert, id.leaf = &c, leaf
	id.mu.Unlock()
	return nil
}

// NotAfter is when the current certificate expires.
func (id *Identity) NotAfter() time.Time {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.leaf.NotAfter
}

// dueForRenewal: past two thirds of the certificate's life.
func (id *Identity) dueForRenewal(now time.Time) bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	life := id.leaf.NotAfter.Sub(id.leaf.NotBefore)
	return now.After(id.leaf.NotBefore.Add(life * 2 / 3))
}

// Transport is an HTTPS transport that trusts the site CA bundle and
// presents the current certificate (swapped in place on renewal).
func (id *Identity) Transport() (*http.Transport, error) {
	return auth.TLSTransport(id.ca, func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		id.mu.Lock()
		defer id.mu.Unlock()
		return id.cert, nil
	})
}

// newKeyAndCSR generates the site's key and a certificate request for it.
func newKeyAndCSR(site string) (keyPEM, csrPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: site}}, k)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// Enroll redeems a join token at the gateway: the agent fetches the CA
// bundle, checks it against the fingerprint the token carries (so it
// knows it talks to the right control plane before it trusts it),
// generates its key, sends a certificate request and stores what comes
// back in dir.
func Enroll(ctx context.Context, gatewayURL, token, dir string) (*Identity, error) {
	t, err := auth.ParseJoinToken(token)
	if err != nil {
		return nil, err
	}
	ca, err := fetchPinnedCA(ctx, gatewayURL, t.CAFingerprint)
	if err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := newKeyAndCSR(t.Site)
	if err != nil {
		return nil, err
	}
	tr, err := auth.TLSTransport(ca, nil)
	if err != nil {
		return nil, err
	}
	var res modelfleet.EnrollResponse
	body, _ := json.Marshal(modelfleet.EnrollRequest{Token: token, CSR: string(csrPEM)})
	if err := httpjson.Do(ctx, &http.Client{Transport: tr}, "enroll", http.MethodPost, gatewayURL+"/api/enroll", body, &res); err != nil {
		return nil, err
	}
	id := &Identity{dir: dir, site: t.Site, ca: []byte(res.CABundle), releaseKeys: res.ReleaseKeys}
	if err := id.store([]byte(res.Certificate), keyPEM); err != nil {
		return nil, err
	}
	return id, nil
}

// fetchPinnedCA reads the gateway's CA bundle over an unverified TLS
// connection and accepts it only if its first certificate hashes to the
// fingerprint.
func fetchPinnedCA(ctx context.Context, gatewayURL, fingerprint string) ([]byte, error) {
	t := auth.BaseTransport()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the bundle is verified by its pinned hash below
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/api/enroll/ca", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: t, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("enroll: fetch the CA bundle: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("enroll: fetch the CA bundle: %s %v", resp.Status, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("enroll: the gateway's CA bundle holds no certificate")
	}
	sum := sha256.Sum256(blk.Bytes)
	if hex.EncodeToString(sum[:]) != fingerprint {
		return nil, fmt.Errorf("enroll: the gateway at %s presents a CA whose fingerprint is not the join token's: refusing to trust it", gatewayURL)
	}
	return b, nil
}

// Renew asks the gateway, over mTLS with the current certificate, for a
// new one for a fresh key, and swaps it in.
func (id *Identity) Renew(ctx context.Context, gatewayURL string) error {
	keyPEM, csrPEM, err := newKeyAndCSR(id.site)
	if err != nil {
		return err
	}
	tr, err := id.Transport()
	if err != nil {
		return err
	}
	var res modelfleet.EnrollResponse
	body, _ := json.Marshal(modelfleet.EnrollRequest{CSR: string(csrPEM)})
	if err := httpjson.Do(ctx, &http.Client{Transport: tr}, "renew", http.MethodPost, gatewayURL+"/api/sites/"+url.PathEscape(id.site)+"/renew", body, &res); err != nil {
		return err
	}
	if res.CABundle != "" {
		id.ca = []byte(res.CABundle)
	}
	id.releaseKeys = res.ReleaseKeys
	return id.store([]byte(res.Certificate), keyPEM)
}

func (id *Identity) store(certPEM, keyPEM []byte) error {
	if err := id.set(certPEM, keyPEM); err != nil {
		return err
	}
	if err := os.MkdirAll(id.dir, 0o700); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"site.key": keyPEM, "ca.crt": id.ca} {
		if err := edge.WriteFileAtomic(filepath.Join(id.dir, name), b); err != nil {
			return err
		}
	}
	// The release keys the gateway gave, merged with what the site knew
	// (revocations only accumulate): trust.go.
	if id.releaseKeys != nil {
		p := filepath.Join(id.dir, releaseKeysFile)
		old, err := LoadTrust(p)
		if err != nil {
			return err
		}
		if err := saveTrust(p, pinned(old, id.releaseKeys)); err != nil {
			return err
		}
	}
	// The certificate last: its presence says the identity is complete.
	return edge.WriteFileAtomic(filepath.Join(id.dir, "site.crt"), certPEM)
}

// identity returns the site's identity, enrolling with the join token if
// it has none (retrying while the gateway is unreachable). Nil if the
// site cannot enrol: it then serves what it has and says why.
func (s *Site) identity(ctx context.Context) *Identity {
	dir := identityDir(s.cfg.DataDir)
	id, err := LoadIdentity(dir, s.cfg.SiteID)
	if err != nil {
		s.log.Error("site identity unreadable: enrol the site again (`modelfleet site enroll`, then --join-token)", "dir", dir, "error", err)
		return nil
	}
	if id != nil {
		return id
	}
	if s.cfg.JoinToken == "" {
		s.log.Error("site not enrolled: the gateway takes only enrolled sites; ask an admin for a join token (`modelfleet site enroll " + s.cfg.SiteID + "`) and give it to the agent in $MODELFLEET_JOIN_TOKEN or $MODELFLEET_JOIN_TOKEN_FILE")
		return nil
	}
	backoff := time.Second
	for ctx.Err() == nil {
		id, err := Enroll(ctx, s.cfg.GatewayURL, s.cfg.JoinToken, dir)
		if err == nil {
			s.pin(id.releaseKeys)
			s.log.Info("site enrolled", "certificate_expires", id.NotAfter().Format(time.RFC3339))
			return id
		}
		code := modelfleet.ErrorCode(err)
		if code == modelfleet.EUNAUTHORIZED || code == modelfleet.EINVALID || code == modelfleet.EFORBIDDEN {
			s.log.Error("enrolment refused", "error", err)
			return nil
		}
		s.log.Warn("enrolment failed; retrying", "error", err)
		_ = modelfleet.Sleep(ctx, backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

// renew renews the site's certificate at two thirds of its life.
func (s *Site) renew(ctx context.Context, id *Identity) {
	for {
		wait := time.Until(id.NotAfter()) / 10
		wait = max(min(wait, time.Hour), 10*time.Second)
		if modelfleet.Sleep(ctx, wait) != nil {
			return
		}
		if !id.dueForRenewal(time.Now()) {
			continue
		}
		if err := id.Renew(ctx, s.cfg.GatewayURL); err != nil {
			s.log.Warn("certificate renewal failed; retrying", "expires", id.NotAfter().Format(time.RFC3339), "error", err)
			continue
		}
		s.pin(id.releaseKeys)
		s.log.Info("certificate renewed", "expires", id.NotAfter().Format(time.RFC3339))
	}
}

// downloadClient fetches artifacts: over the site's mTLS client from the
// gateway (its artifact mirror), with the default client from anywhere
// else (the registry, blob storage).
func (s *Site) downloadClient() *http.Client {
	if s.cfg.GatewayClient == nil {
		return nil
	}
	gw, err := url.Parse(s.cfg.GatewayURL)
	if err != nil {
		return nil
	}
	return &http.Client{Transport: hostRouter{host: gw.Host, gateway: s.cfg.GatewayClient.Transport, other: http.DefaultTransport}}
}

type hostRouter struct {
	host           string
	gateway, other http.RoundTripper
}

func (h hostRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == h.host {
		return h.gateway.RoundTrip(r)
	}
	return h.other.RoundTrip(r)
}
