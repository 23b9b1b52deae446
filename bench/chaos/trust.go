package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet/app"
	"github.com/modelfleet/modelfleet/auth"
)

// trust is the run's authentication when -auth is on (the default): what
// a production control plane brings and the harness stands in for, as it
// stands in for Azure ML's registry.
//
//   - An OIDC issuer (Entra ID's stand-in: auth.Issuer, discovery and JWKS
//     served by the harness) that mints a token per person and service the
//     run acts as; the gateway verifies them as any issuer's
//     (--oidc-issuer, --oidc-audience) and grants roles from a bindings
//     file (--role-bindings).
//   - The gateway's own PKI (its --pki-dir, kept across kills): TLS, the
//     site CA, the release-signing keys the worker signs with
//     (--release-keys, the same directory, as the cloud chart mounts it).
//   - Every agent enrolled with a join token `modelfleet site enroll`
//     made (the CLI, with the admin's token), given once in
//     $MODELFLEET_JOIN_TOKEN: restarted, it runs from the identity on its
//     disk, with no token. Its release keys are pinned at enrolment, so it
//     loads only versions the worker signed.
//   - The Event Grid webhook with a shared key (?code=), as Azure's.
//   - Gates approved with `modelfleet release approve` (the CLI, with an
//     approver's token): the gateway signs the control, the release
//     verifies it.
type trust struct {
	dir      string
	issuer   *auth.Issuer
	srv      *http.Server
	bindings string
	tokens   map[string]string // who -> token file
	eventKey string
	pki      string // the gateway's --pki-dir
	ca       []byte // the gateway's CA bundle, once it started
}

// The run's identities: a token file each, and the role bound to it.
var chaosIdentities = []struct {
	file string
	role string
	id   auth.Identity
}{
	{"admin.token", "admin", auth.Identity{Subject: "chaos-admin@modelfleet.local"}},
	{"release-manager.token", "release-manager", auth.Identity{Subject: "chaos-manager@modelfleet.local"}},
	{"approver.token", "approver", auth.Identity{Subject: "chaos-approver@modelfleet.local"}},
	{"viewer.token", "viewer", auth.Identity{Subject: "chaos-viewer@modelfleet.local"}},
	{"worker.token", "cloud-worker", auth.Identity{Subject: "chaos-worker", Service: true, Roles: []string{"Modelfleet.Worker"}}},
}

// newTrust starts the issuer on port and writes the bindings and tokens
// under dir.
func newTrust(dir string, port int, pki string) (*trust, error) {
	t := &trust{dir: dir, tokens: map[string]string{}, pki: pki}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	var err error
	if t.issuer, err = auth.OpenIssuer(filepath.Join(dir, "issuer"), url, app.DevAudience); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		return nil, err
	}
	t.srv = &http.Server{Handler: t.issuer.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()

	var b strings.Builder
	b.WriteString("apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n")
	for _, ci := range chaosIdentities {
		if ci.id.Service {
			fmt.Fprintf(&b, "  - {role: %s, appRoles: [%s]}\n", ci.role, strings.Join(ci.id.Roles, ", "))
		} else {
			fmt.Fprintf(&b, "  - {role: %s, subjects: [%s]}\n", ci.role, ci.id.Subject)
		}
		tok, err := t.issuer.Mint(ci.id, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, ci.file)
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			return nil, err
		}
		t.tokens[ci.file] = p
	}
	t.bindings = filepath.Join(dir, "role-bindings.yaml")
	if err := os.WriteFile(t.bindings, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	t.eventKey = hex.EncodeToString(key)
	return t, nil
}

func (t *trust) close() {
	if t != nil && t.srv != nil {
		_ = t.srv.Close()
	}
}

// gatewayArgs are the gateway's authentication flags, and its environment.
func (t *trust) gatewayArgs() (args, env []string) {
	return []string{"--oidc-issuer", t.issuer.URL, "--oidc-audience", app.DevAudience, "--role-bindings", t.bindings, "--pki-dir", t.pki},
		[]string{"MODELFLEET_EVENT_KEYS=" + t.eventKey}
}

// loadCA reads the CA bundle the gateway wrote at its first start.
func (t *trust) loadCA() error {
	b, err := os.ReadFile(filepath.Join(t.pki, "ca.crt"))
	if err != nil {
		return fmt.Errorf("the gateway's CA: %w", err)
	}
	t.ca = b
	return os.WriteFile(filepath.Join(t.dir, "ca.crt"), b, 0o644)
}

// client reaches the gateway as the identity whose token is in file.
func (t *trust) client(file string) (*http.Client, error) {
	c, err := auth.Client(t.ca, auth.FileToken(t.tokens[file]))
	if err != nil {
		return nil, err
	}
	c.Timeout = 5 * time.Second
	return c, nil
}

// cliEnv is the environment of a CLI call as the identity in file.
func (t *trust) cliEnv(gwURL, file string) []string {
	return append(os.Environ(),
		"MODELFLEET_GATEWAY_URL="+gwURL,
		"MODELFLEET_TOKEN_FILE="+t.tokens[file],
		"MODELFLEET_GATEWAY_CA="+filepath.Join(t.dir, "ca.crt"),
		"MODELFLEET_DATA_DIR="+filepath.Join(t.dir, "cli"),
	)
}

// cli runs the modelfleet CLI as the identity in file; its stdout.
func (t *trust) cli(ctx context.Context, bin, gwURL, file string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = t.cliEnv(gwURL, file)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("modelfleet %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// probeClient checks a TLS endpoint's readiness (/readyz, public) before
// the harness has the CA: readiness only, nothing is sent or trusted.
func probeClient() *http.Client {
	t := auth.BaseTransport()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a readiness probe of a public endpoint
	return &http.Client{Transport: t, Timeout: 2 * time.Second}
}

// certID is a fingerprint of the site's certificate on disk, "" if none.
func certID(siteDir string) string {
	b, err := os.ReadFile(filepath.Join(siteDir, "identity", "site.crt"))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
