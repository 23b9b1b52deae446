package app

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/auth"
	"github.com/modelfleet/modelfleet/internal/flock"
	"github.com/modelfleet/modelfleet/keyvault"
)

// AuthConfig turns the gateway's authentication and authorisation on
// (docs/security.md): it then serves TLS only, people and services
// present OIDC bearer tokens, sites their client certificates from the
// site CA, and every endpoint checks a permission.
type AuthConfig struct {
	// PKIDir holds the site CA and the control-signing keys (default
	// <gateway data dir>/pki), and, without a PostgreSQL store, the
	// enrolments (enrolments.json; with one, they live in the database,
	// which imports that file once if it is there).
	PKIDir string
	// Hosts the server certificate names, besides the listen address's
	// host, localhost and 127.0.0.1.
	Hosts []string
	// TLSCertFile and TLSKeyFile bring your own server certificate
	// (default: one the site CA issues at start).
	TLSCertFile, TLSKeyFile string
	// SiteCACertFile (and SiteCAKeyFile, to enrol) bring your own site
	// CA (cert-manager, Key Vault); default: one created in PKIDir.
	SiteCACertFile, SiteCAKeyFile string
	// SiteCRLFiles are certificate revocation lists of the site CA (PEM
	// or DER; auth.CRLFiles): a site certificate one lists is refused at
	// the gateway and its signals dead-lettered. Re-read when they change
	// (checked every SiteCRLPoll, default 30s); files that do not read or
	// verify keep the CRLs in force (at start they stop it).
	SiteCRLFiles []string
	SiteCRLPoll  time.Duration
	// ReleaseVaultKeys are release-signing keys in Azure Key Vault
	// (--release-key-vault, OpenVaultKeys), given to sites and signing
	// the key set beside those in <PKIDir>/release-keys; with them no
	// key file is created there.
	ReleaseVaultKeys []*keyvault.Key
	// ControlVaultKeys are control-statement keys in Azure Key Vault
	// (--control-key-vault): they sign every control statement (ES256)
	// before the keys in <PKIDir>/control-keys, and releases started now
	// accept them; with them no key file is created there.
	ControlVaultKeys []*keyvault.Key
	// OIDC is the token issuer people and services authenticate with.
	// Nil with DevIssuer: the embedded stack's own.
	OIDC *auth.OIDCConfig
	// DevIssuer runs the embedded issuer at <gateway>/oidc and writes dev
	// credentials to CredentialsDir (default <data dir>/credentials).
	DevIssuer      bool
	CredentialsDir string
	// BindingsFile is the role bindings file; empty with DevIssuer: the
	// dev identities' bindings (DevBindings). The gateway re-reads it
	// when its content changes (checked every BindingsPoll, default 5s)
	// and on ReloadBindings (SIGHUP); a file that does not parse keeps
	// the bindings in force.
	BindingsFile string
	BindingsPoll time.Duration
	// SiteCertLifetime is how long a site certificate lives (default 7
	// days; agents renew at two thirds).
	SiteCertLifetime time.Duration
	// RevocationPoll is, on a PostgreSQL store, how often each replica
	// re-reads the site revocations other replicas made (default
	// auth.DefaultRevocationPoll).
	RevocationPoll time.Duration
}

// security is the gateway's running trust: who is who, and the keys.
type security struct {
	ca          *auth.CA
	enrol       auth.Enrolments // in the database with a PostgreSQL store, else <pki>/enrolments.json
	issuer      *auth.Issuer
	guard       *auth.Guard
	tls         *tls.Config
	controlKeys []crypto.Signer // in signing order: Key Vault's, then the files', newest first
	release     *ReleaseKeys    // release_keys.go
	lifetime    time.Duration
	log         *slog.Logger
	reloader    *auth.BindingsReloader // nil without a bindings file
	stopReload  func()
	crls        *auth.CRLFiles // nil without --site-crl-file
	stopCRLs    func()
}

// openSecurity prepares the gateway's trust from cfg; url is the
// gateway's own base URL (https://host:port) once bound. pool, if not nil,
// is the PostgreSQL store the replicas share: the enrolments live there.
func openSecurity(cfg *AuthConfig, dataDir string, ln net.Listener, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) (_ *security, _ string, err error) {
	pki := cfg.PKIDir
	if pki == "" {
		pki = filepath.Join(dataDir, "pki")
	}
	s := &security{log: log, lifetime: cfg.SiteCertLifetime}
	if s.lifetime <= 0 {
		s.lifetime = auth.DefaultSiteCertLifetime
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if cfg.SiteCACertFile != "" {
		s.ca, err = auth.LoadCA(cfg.SiteCACertFile, cfg.SiteCAKeyFile)
	} else {
		s.ca, err = auth.OpenCA(pki)
	}
	if err != nil {
		return nil, "", err
	}
	if s.enrol, err = openEnrolments(pki, pool, cfg.RevocationPoll, log); err != nil {
		return nil, "", err
	}
	if s.controlKeys, err = openControlKeys(filepath.Join(pki, "control-keys"), cfg.ControlVaultKeys); err != nil {
		return nil, "", err
	}
	if s.release, err = OpenReleaseKeys(filepath.Join(pki, "release-keys"), true, cfg.ReleaseVaultKeys...); err != nil {
		return nil, "", err
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var cert tls.Certificate
	if cfg.TLSCertFile != "" {
		if cert, err = tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, "", fmt.Errorf("gateway TLS: %w", err)
		}
	} else {
		hosts := append([]string{host, "localhost", "127.0.0.1", "::1"}, cfg.Hosts...)
		if hn, err := os.Hostname(); err == nil {
			hosts = append(hosts, hn)
		}
		if cert, err = s.ca.ServerCert(hosts); err != nil {
			return nil, "", err
		}
	}
	s.tls = &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		// Sites present a client certificate; people and services do
		// not (they send a bearer token), so the certificate is optional
		// at the handshake and required per endpoint by the guard.
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: s.ca.Pool(),
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	url := "https://" + net.JoinHostPort(host, port)

	oidcCfg := cfg.OIDC
	if cfg.DevIssuer {
		if s.issuer, err = auth.OpenIssuer(pki, url+"/oidc", DevAudience); err != nil {
			return nil, "", err
		}
		oidcCfg = &auth.OIDCConfig{Issuer: s.issuer.URL, Audience: DevAudience, KeySet: s.issuer.KeySet()}
	}
	var verifier *auth.OIDC
	if oidcCfg != nil {
		if verifier, err = auth.NewOIDC(*oidcCfg); err != nil {
			return nil, "", err
		}
	}
	var bindings *auth.Bindings
	switch {
	case cfg.BindingsFile != "":
		s.reloader = auth.NewBindingsReloader(cfg.BindingsFile, log, reg)
		s.reloader.Poll = cfg.BindingsPoll
		if bindings, err = s.reloader.Load(); err != nil {
			return nil, "", err
		}
	case cfg.DevIssuer:
		bindings = DevBindings()
	default:
		return nil, "", errors.New("gateway auth: give a role bindings file (--role-bindings; docs/security.md)")
	}
	s.guard = auth.NewGuard(verifier, bindings, log, reg)
	s.guard.CA, s.guard.Enrolments = s.ca, s.enrol
	if len(cfg.SiteCRLFiles) > 0 {
		if s.crls, err = auth.NewCRLFiles(cfg.SiteCRLFiles, s.ca.Bundle, log, reg); err != nil {
			return nil, "", err
		}
		s.crls.Poll = cfg.SiteCRLPoll
		if err := s.crls.Load(); err != nil {
			return nil, "", err
		}
		s.guard.CRLs = s.crls
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.crls.Run(ctx)
		}()
		s.stopCRLs = func() { cancel(); <-done }
	}
	if cfg.DevIssuer {
		dir := cfg.CredentialsDir
		if dir == "" {
			dir = filepath.Join(filepath.Dir(filepath.Clean(dataDir)), "credentials")
		}
		if err := s.writeDevCredentials(dir, url); err != nil {
			return nil, "", err
		}
	}
	if s.reloader != nil {
		s.reloader.Guard = s.guard
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.reloader.Run(ctx)
		}()
		s.stopReload = func() { cancel(); <-done }
	}
	return s, url, nil
}

// openEnrolments opens the enrolments: in the shared database with a
// PostgreSQL store (importing <pki>/enrolments.json once, if there), else
// in that file.
func openEnrolments(pki string, pool *pgxpool.Pool, poll time.Duration, log *slog.Logger) (auth.Enrolments, error) {
	file := filepath.Join(pki, "enrolments.json")
	if pool == nil {
		return auth.OpenEnrolments(file)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := auth.OpenPostgresEnrolments(ctx, pool, auth.PostgresEnrolmentsOptions{Poll: poll, ImportFile: file, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("site enrolments on PostgreSQL", "revocation_poll", cmp.Or(poll, auth.DefaultRevocationPoll).String())
	return e, nil
}

// close stops watching the role bindings file and the enrolments.
func (s *security) close() {
	if s.stopReload != nil {
		s.stopReload()
		s.stopReload = nil
	}
	if s.stopCRLs != nil {
		s.stopCRLs()
		s.stopCRLs = nil
	}
	if s.enrol != nil {
		s.enrol.Close()
		s.enrol = nil
	}
}

// ReloadBindings re-reads the gateway's role bindings file now (the
// gateway command does on SIGHUP). A file that does not parse keeps the
// bindings in force, and the error says why.
func (g *Gateway) ReloadBindings() error {
	if g.sec == nil || g.sec.reloader == nil {
		return errors.New("gateway: no role bindings file to reload (--role-bindings)")
	}
	return g.sec.reloader.Reload()
}

// ControlKeys are the public keys releases started now accept controls
// signed with.
func (s *security) ControlKeys() []modelfleet.TrustedKey {
	var out []modelfleet.TrustedKey
	for _, k := range s.controlKeys {
		tk, err := modelfleet.TrustedKeyOf(k.Public())
		if err != nil {
			continue // refused by openControlKeys
		}
		out = append(out, tk)
	}
	return out
}

// maxControlKeys bounds the control keys (files and Key Vault's): every
// key signs every statement, and a verifier reads at most
// MaxEnvelopeSignatures signatures.
const maxControlKeys = modelfleet.MaxEnvelopeSignatures

// openControlKeys returns the control-statement keys in signing order:
// the Key Vault keys (ECDSA P-256) in the order given, then the ed25519
// files of dir, newest first. With vault keys and no file in dir, none is
// created.
func openControlKeys(dir string, vault []*keyvault.Key) ([]crypto.Signer, error) {
	keys := make([]crypto.Signer, 0, len(vault))
	seen := map[string]bool{}
	add := func(k crypto.Signer) error {
		tk, err := modelfleet.TrustedKeyOf(k.Public())
		if err != nil {
			return fmt.Errorf("control keys: %w", err)
		}
		if seen[tk.ID] {
			return fmt.Errorf("control keys: key %s is configured twice", tk.ID)
		}
		seen[tk.ID] = true
		keys = append(keys, k)
		return nil
	}
	for _, k := range vault {
		if err := add(k); err != nil {
			return nil, err
		}
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.key"))
	if len(paths) > 0 || len(vault) == 0 {
		files, err := loadControlKeys(dir)
		if err != nil {
			return nil, err
		}
		for i := len(files) - 1; i >= 0; i-- { // newest (last by name) first
			if err := add(files[i]); err != nil {
				return nil, err
			}
		}
	}
	if len(keys) > maxControlKeys {
		return nil, fmt.Errorf("control keys: %d (files in %s and Key Vault), at most %d: delete the files of keys no open release was started with", len(keys), dir, maxControlKeys)
	}
	return keys, nil
}

// loadControlKeys reads every *.key in dir (ed25519, PKCS#8 PEM),
// creating one on first use. All of them sign every statement (DSSE
// carries several signatures), so a release started before a rotation
// still finds a signature by a key it trusts: rotate by adding a key, and
// delete the old one once the releases started before have closed.
// createControlKey writes a new ed25519 key into dir and returns its path.
func createControlKey(dir string) (string, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z")+".key")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return p, nil
}

func loadControlKeys(dir string) ([]ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.key"))
	if len(paths) == 0 {
		// Created under an exclusive lock, looking again under it, and
		// renamed into place whole: replicas starting at once on one empty
		// shared directory end up with one key (as auth.OpenCA does for
		// the site CA).
		unlock, err := flock.Lock(filepath.Join(dir, "create.lock"), 0o600)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if paths, _ = filepath.Glob(filepath.Join(dir, "*.key")); len(paths) == 0 {
			p, err := createControlKey(dir)
			if err != nil {
				return nil, err
			}
			paths = []string{p}
		}
	}
	slices.Sort(paths)
	var keys []ed25519.PrivateKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("control key %s: no PEM block", p)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("control key %s: %w", p, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("control key %s: not ed25519", p)
		}
		keys = append(keys, ek)
	}
	return keys, nil
}

// sign signs a control statement with every control key.
func (s *security) sign(st modelfleet.ControlStatement) (modelfleet.Control, error) {
	return modelfleet.SignControlAll(st, s.controlKeys)
}

// DevAudience is the audience of the embedded issuer's tokens.
const DevAudience = "modelfleet"

// The embedded stack's identities: the newcomer's own (every human role,
// so the README's commands work as they are), one per role to try the
// others with, and the cloud worker's service identity.
var devIdentities = []struct {
	file string
	id   auth.Identity
}{
	{"token", auth.Identity{Subject: "dev@modelfleet.local", Groups: []string{"modelfleet-dev"}}},
	{"viewer.token", auth.Identity{Subject: "viewer@modelfleet.local"}},
	{"ml-engineer.token", auth.Identity{Subject: "engineer@modelfleet.local"}},
	{"release-manager.token", auth.Identity{Subject: "manager@modelfleet.local"}},
	{"approver-plant-a.token", auth.Identity{Subject: "approver-a@modelfleet.local"}},
	{"admin.token", auth.Identity{Subject: "admin@modelfleet.local"}},
	{"worker.token", auth.Identity{Subject: "modelfleet-worker", Service: true, Roles: []string{"Modelfleet.Worker"}}},
}

// DevBindings binds the embedded issuer's identities.
func DevBindings() *auth.Bindings {
	b, err := auth.ParseBindings([]byte(`
apiVersion: modelfleet.dev/v1
kind: RoleBindings
bindings:
  - {role: viewer, groups: [modelfleet-dev], subjects: [viewer@modelfleet.local]}
  - {role: ml-engineer, groups: [modelfleet-dev], subjects: [engineer@modelfleet.local]}
  - {role: release-manager, groups: [modelfleet-dev], subjects: [manager@modelfleet.local]}
  - {role: approver, groups: [modelfleet-dev]}
  - {role: approver, subjects: [approver-a@modelfleet.local], scope: {plant: plant-a}}
  - {role: admin, groups: [modelfleet-dev], subjects: [admin@modelfleet.local]}
  - {role: cloud-worker, appRoles: [Modelfleet.Worker]}
`))
	if err != nil {
		panic(err) // a constant document
	}
	return b
}

// DevTokenLifetime is how long the embedded issuer's tokens live; they
// are minted again at every start.
const DevTokenLifetime = 30 * 24 * time.Hour

// writeDevCredentials mints the dev identities' tokens into dir, with the
// gateway's URL and CA, which the CLI reads (cmd/modelfleet/credentials.go).
func (s *security) writeDevCredentials(dir, url string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range devIdentities {
		tok, err := s.issuer.Mint(d.id, DevTokenLifetime)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, d.file), []byte(tok+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), s.ca.Bundle, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "gateway-url"), []byte(url+"\n"), 0o644)
}

// devToken mints a token for a dev identity by its file name.
func (s *security) devToken(file string) (string, error) {
	for _, d := range devIdentities {
		if d.file == file {
			return s.issuer.Mint(d.id, DevTokenLifetime)
		}
	}
	return "", fmt.Errorf("no dev identity %s", file)
}
