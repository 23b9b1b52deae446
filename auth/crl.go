package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// Certificate revocation lists of a bring-your-own site CA (cert-manager,
// Key Vault, a plant's own PKI): the gateway's enrolment store knows only
// the certificates it issued, so sites whose certificates another CA
// issues are revoked there, by CRL. CRLFiles reads one or more files, each
// holding PEM "X509 CRL" blocks or one DER CRL, checks every CRL against the
// site CA bundle (x509.RevocationList.CheckSignatureFrom: a CRL no CA of the
// bundle signed refuses the whole set), and reports a certificate whose
// issuer and serial a CRL lists as revoked. The files are read every Poll
// and applied when their content changes (a Kubernetes Secret or ConfigMap
// update swaps a symlink); a set that does not read or verify leaves the
// set in force. A CRL past its NextUpdate is logged as an error at every
// change and on every poll once an hour, and still applied: an old list of
// revocations is better than none.

// Bounds of the CRL files.
const (
	MaxCRLFiles    = 16
	MaxCRLFileSize = 32 << 20
	MaxCRLsPerFile = 64
	// DefaultCRLPoll is how often the files are looked at.
	DefaultCRLPoll = 30 * time.Second
)

// CRLFiles holds the revocations the CRL files list.
type CRLFiles struct {
	Paths []string
	// Poll is how often Run reads the files (DefaultCRLPoll when zero).
	Poll time.Duration
	Log  *slog.Logger

	issuers []*x509.Certificate
	now     func() time.Time
	table   atomic.Pointer[crlTable]

	mu        sync.Mutex
	applied   string // hash of the contents in force
	refused   string // hash of the last contents refused (logged once)
	staleLog  time.Time
	reloads   *prometheus.CounterVec
	failing   prometheus.Gauge
	revokedNo prometheus.Gauge
}

// crlTable is a set of revocations: issuer (raw subject) and serial.
type crlTable struct {
	revoked map[string]struct{}
	stale   []string // CRLs past their NextUpdate, by issuer and number
}

func revocationKey(rawIssuer []byte, serialHex string) string {
	return string(rawIssuer) + "\x00" + serialHex
}

// NewCRLFiles returns the CRL files at paths, checked against the CA
// certificates in caBundle (PEM), with metrics registered with reg (nil:
// none). Load them before use.
func NewCRLFiles(paths []string, caBundle []byte, log *slog.Logger, reg prometheus.Registerer) (*CRLFiles, error) {
	if len(paths) == 0 || len(paths) > MaxCRLFiles {
		return nil, fmt.Errorf("site CRLs: %d files, 1 to %d", len(paths), MaxCRLFiles)
	}
	c := &CRLFiles{Paths: paths, Log: log, now: time.Now}
	for rest := caBundle; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("site CRLs: the site CA bundle: %w", err)
		}
		c.issuers = append(c.issuers, cert)
	}
	if len(c.issuers) == 0 {
		return nil, errors.New("site CRLs: the site CA bundle holds no certificate to check them with")
	}
	c.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelfleet_auth_crl_reloads_total", Help: "Site CRL file reloads, by outcome (applied, refused).",
	}, []string{"outcome"})
	c.failing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "modelfleet_auth_crl_reload_failing", Help: "1 while the site CRL files on disk are refused and older CRLs are in force.",
	})
	c.revokedNo = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "modelfleet_auth_crl_revoked_certificates", Help: "Site certificates the CRLs in force list.",
	})
	if reg != nil {
		reg.MustRegister(c.reloads, c.failing, c.revokedNo)
	}
	c.table.Store(&crlTable{})
	return c, nil
}

// Revoked reports whether a CRL in force lists c (by its issuer and
// serial). Safe for concurrent use.
func (c *CRLFiles) Revoked(cert *x509.Certificate) bool {
	if c == nil || cert == nil {
		return false
	}
	_, ok := c.table.Load().revoked[revocationKey(cert.RawIssuer, cert.SerialNumber.Text(16))]
	return ok
}

// Load reads the files for the first time: at start, where a file that
// does not read or verify is fatal.
func (c *CRLFiles) Load() error { return c.check(true, true) }

// Check applies the files if their content changed; it returns why
// changed files were refused.
func (c *CRLFiles) Check() error { return c.check(false, false) }

// Run checks the files every Poll until ctx ends.
func (c *CRLFiles) Run(ctx context.Context) {
	poll := c.Poll
	if poll <= 0 {
		poll = DefaultCRLPoll
	}
	pollChecks(ctx, poll, c.Check)
}

// pollChecks calls check every poll until ctx ends (the watched files'
// reloaders: role bindings, CRLs). check reports and counts its own
// failures.
func pollChecks(ctx context.Context, poll time.Duration, check func() error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = check()
		}
	}
}

func (c *CRLFiles) check(force, first bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	contents, sum, err := c.read()
	if err == nil && sum == c.applied && !force {
		c.warnStale(c.table.Load(), false)
		return nil
	}
	var t *crlTable
	if err == nil {
		t, err = c.parse(contents)
	}
	if err != nil {
		if first {
			return err
		}
		c.failing.Set(1)
		key := sum
		if key == "" {
			key = "unreadable: " + err.Error()
		}
		if key != c.refused {
			c.refused = key
			c.reloads.WithLabelValues("refused").Inc()
			c.logger().Error("site CRL files refused: the CRLs in force stay", "files", c.Paths, "error", err)
		}
		return err
	}
	c.table.Store(t)
	c.applied, c.refused = sum, ""
	c.failing.Set(0)
	c.revokedNo.Set(float64(len(t.revoked)))
	c.reloads.WithLabelValues("applied").Inc()
	c.logger().Info("site CRLs loaded", "files", len(c.Paths), "revoked", len(t.revoked), "sha256", sum[:16])
	c.warnStale(t, true)
	return nil
}

// warnStale logs CRLs past their NextUpdate: at every change, and once an
// hour while they stay in force.
func (c *CRLFiles) warnStale(t *crlTable, now bool) {
	if len(t.stale) == 0 || (!now && c.now().Sub(c.staleLog) < time.Hour) {
		return
	}
	c.staleLog = c.now()
	c.logger().Error("site CRLs past their next update are in force: publish fresh CRLs (still applied)", "crls", t.stale)
}

// read returns the files' contents (bounded) and the hash of them all.
func (c *CRLFiles) read() ([][]byte, string, error) {
	h := sha256.New()
	out := make([][]byte, 0, len(c.Paths))
	for _, p := range c.Paths {
		b, err := readBounded(p, MaxCRLFileSize)
		if err != nil {
			return nil, "", fmt.Errorf("site CRL file %s: %w", p, err)
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
		out = append(out, b)
	}
	return out, hex.EncodeToString(h.Sum(nil)), nil
}

func readBounded(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "over %d bytes", limit)
	}
	return b, nil
}

// parse decodes and verifies the CRLs of every file.
func (c *CRLFiles) parse(contents [][]byte) (*crlTable, error) {
	t := &crlTable{revoked: map[string]struct{}{}}
	for i, b := range contents {
		ders, err := SplitCRLs(b)
		if err != nil {
			return nil, fmt.Errorf("site CRL file %s: %w", c.Paths[i], err)
		}
		for j, der := range ders {
			crl, err := c.verify(der)
			if err != nil {
				return nil, fmt.Errorf("site CRL file %s, CRL %d: %w", c.Paths[i], j+1, err)
			}
			for _, e := range crl.RevokedCertificateEntries {
				t.revoked[revocationKey(crl.RawIssuer, e.SerialNumber.Text(16))] = struct{}{}
			}
			if !crl.NextUpdate.IsZero() && c.now().After(crl.NextUpdate) {
				t.stale = append(t.stale, fmt.Sprintf("%s #%v (next update %s)", crl.Issuer, crl.Number, crl.NextUpdate.UTC().Format(time.RFC3339)))
			}
		}
	}
	return t, nil
}

// verify parses a DER CRL and checks that a CA of the bundle signed it.
func (c *CRLFiles) verify(der []byte) (*x509.RevocationList, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, err
	}
	var last error
	for _, ca := range c.issuers {
		if !bytes.Equal(ca.RawSubject, crl.RawIssuer) {
			continue
		}
		if last = crl.CheckSignatureFrom(ca); last == nil {
			return crl, nil
		}
	}
	if last != nil {
		return nil, fmt.Errorf("issued by %s, but its signature does not verify: %w", crl.Issuer, last)
	}
	return nil, fmt.Errorf("issued by %s, which is not a CA of the site CA bundle", crl.Issuer)
}

// SplitCRLs returns the DER CRLs in b: PEM "X509 CRL" blocks (other
// blocks are an error), or b itself when it is not PEM (one DER CRL).
func SplitCRLs(b []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return nil, errors.New("empty: no CRL")
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return [][]byte{b}, nil
	}
	var out [][]byte
	for rest := trimmed; len(bytes.TrimSpace(rest)) > 0; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return nil, errors.New("text after the last PEM block that is not PEM")
		}
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("a PEM block %q: want \"X509 CRL\"", clipString(blk.Type, 40))
		}
		if len(out) == MaxCRLsPerFile {
			return nil, fmt.Errorf("more than %d CRLs", MaxCRLsPerFile)
		}
		out = append(out, blk.Bytes)
	}
	return out, nil
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (c *CRLFiles) logger() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}
