// Package oidctest runs a real OpenID Provider in-process for tests:
// zitadel/oidc's op package over its example in-memory storage, with
// the device authorization grant (RFC 8628) on for a public client, as
// Entra ID and Keycloak register a CLI.
package oidctest

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Provider is a running OpenID Provider.
type Provider struct {
	// Issuer is its URL (http on loopback).
	Issuer string
	// ClientID is the public client allowed the device code and refresh
	// token grants; its access tokens are JWTs whose audience is the
	// client ID.
	ClientID string
	// Subject is the sub of the tokens issued to the test user.
	Subject string
	st      *storage.Storage
	users   storage.UserStore
}

// Start runs a provider until the test ends. Device codes live
// lifetime; clients poll every second (the least RFC 8628 allows to
// express).
func Start(tb testing.TB, clientID string, lifetime time.Duration) *Provider {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	users := storage.NewUserStore(issuer)
	st := storage.NewStorageWithClients(users, map[string]*storage.Client{clientID: storage.DeviceClient(clientID, "")})
	p, err := op.NewProvider(&op.Config{
		CryptoKey:             sha256.Sum256([]byte(issuer)),
		GrantTypeRefreshToken: true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime: lifetime, PollInterval: time.Second, UserFormPath: "/device", UserCode: op.UserCodeBase20,
		},
	}, deviceStorage{st, clientID}, op.StaticIssuer(issuer), op.WithAllowInsecure(),
		op.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	return &Provider{Issuer: issuer, ClientID: clientID, Subject: users.GetUserByUsername(username(issuer)).ID, st: st, users: users}
}

func username(issuer string) string {
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(issuer, "http://"))
	return "test-user@" + host
}

// User is the person at the provider's device page: they sign in with
// the example's test user, enter userCode and allow or deny, as the
// example's page handlers do (exampleop/device.go; that page records the
// username where the provider later looks up a user ID, so the ID is
// recorded here). A code the provider does not know is refused.
func (p *Provider) User(userCode string, allow bool) error {
	ctx := context.Background()
	name := username(p.Issuer)
	if err := p.st.CheckUsernamePasswordSimple(name, "verysecure"); err != nil {
		return err
	}
	if _, err := p.st.GetDeviceAuthorizationByUserCode(ctx, userCode); err != nil {
		return err
	}
	if allow {
		return p.st.CompleteDeviceAuthorization(ctx, userCode, p.users.GetUserByUsername(name).ID)
	}
	return p.st.DenyDeviceAuthorization(ctx, userCode)
}

// deviceStorage is the example storage with the CLI's client as Entra ID
// and Keycloak register it. The example remembers a refresh token's
// client only for the authorisation-code flow; the device flow's is
// filled in here so the provider's own refresh checks pass.
type deviceStorage struct {
	*storage.Storage
	clientID string
}

type publicClient struct{ op.Client }

func (publicClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (publicClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (publicClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (publicClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
}

func (s deviceStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return publicClient{c}, nil
}

func (s deviceStorage) TokenRequestByRefreshToken(ctx context.Context, rt string) (op.RefreshTokenRequest, error) {
	r, err := s.Storage.TokenRequestByRefreshToken(ctx, rt)
	if rr, ok := r.(*storage.RefreshTokenRequest); ok && rr.ApplicationID == "" {
		rr.ApplicationID = s.clientID
	}
	return r, err
}
