package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelfleet/modelfleet/auth"
)

// The CLI's credential for the gateway, first found wins:
//
//   - $MODELFLEET_TOKEN: a bearer token (from your OIDC issuer: Entra ID,
//     Keycloak, ...);
//   - $MODELFLEET_TOKEN_FILE: a file holding one, read on every request;
//   - the token `modelfleet login` kept (login.go), refreshed with its
//     refresh token when it expires and written back;
//   - <data dir>/credentials/token: what the embedded stack (`make run`)
//     mints for its dev identity, so the README's commands work as they are.
//
// The gateway's CA: $MODELFLEET_GATEWAY_CA (a PEM file), else
// <data dir>/credentials/ca.crt, else the system's roots.
func credentialsDir() string { return filepath.Join(dataDir(), "credentials") }

// defaultGatewayURL is $MODELFLEET_GATEWAY_URL, else the embedded stack's
// (written to the credentials dir), else http://127.0.0.1:8080.
func defaultGatewayURL() string {
	if v := os.Getenv("MODELFLEET_GATEWAY_URL"); v != "" {
		return v
	}
	if b, err := os.ReadFile(filepath.Join(credentialsDir(), "gateway-url")); err == nil {
		if u := strings.TrimSpace(string(b)); u != "" {
			return u
		}
	}
	return "http://127.0.0.1:8080"
}

// tokenSource is the credential sent to the gateway at gatewayURL. The
// embedded stack's own credential goes first to the embedded stack's own
// gateway (the URL it wrote beside the credential), so a person logged in
// to a production issuer never sends that token to a local `make run`.
func tokenSource(gatewayURL string) auth.TokenSource {
	if t := os.Getenv("MODELFLEET_TOKEN"); t != "" {
		return auth.StaticToken(t)
	}
	if f := os.Getenv("MODELFLEET_TOKEN_FILE"); f != "" {
		return auth.FileToken(f)
	}
	dev := filepath.Join(credentialsDir(), "token")
	if fileExists(dev) && gatewayURL != "" && sameURL(gatewayURL, embeddedGatewayURL()) {
		return auth.FileToken(dev)
	}
	if f, err := loginTokenPath(); err == nil && fileExists(f) {
		return (&auth.LoginFile{Path: f}).Token
	}
	if fileExists(dev) {
		return auth.FileToken(dev)
	}
	return nil
}

// embeddedGatewayURL is the URL the embedded stack wrote beside its
// credential, "" if none.
func embeddedGatewayURL() string {
	b, err := os.ReadFile(filepath.Join(credentialsDir(), "gateway-url"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func sameURL(a, b string) bool {
	return a != "" && strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

func gatewayCA() ([]byte, error) {
	f := os.Getenv("MODELFLEET_GATEWAY_CA")
	if f == "" {
		f = filepath.Join(credentialsDir(), "ca.crt")
		if !fileExists(f) {
			return nil, nil
		}
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("gateway CA: %w", err)
	}
	return b, nil
}

// http is the client the CLI reaches the gateway with.
func (g *globals) http() *http.Client {
	if g.httpClient != nil {
		return g.httpClient
	}
	ca, err := gatewayCA()
	if err == nil {
		g.httpClient, err = auth.Client(ca, tokenSource(g.gatewayURL))
	}
	if err != nil {
		// Surface it at the first request rather than at flag parsing.
		g.httpClient = &http.Client{Transport: failing{err}}
	}
	return g.httpClient
}

type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }
