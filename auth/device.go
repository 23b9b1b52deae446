package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/modelfleet/modelfleet"
)

// DefaultLoginScopes are what `modelfleet login` asks for unless told
// otherwise: an OIDC login whose refresh token outlives the session.
// Microsoft Entra ID wants the gateway API's scope instead
// (api://<gateway-app>/.default offline_access), so that the access
// token's audience is the gateway.
var DefaultLoginScopes = []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}

// Bounds on what a person passes to `modelfleet login`.
const (
	maxClientIDLen = 256
	maxScopeLen    = 256
	maxScopes      = 32
	maxIssuerLen   = 2048
)

// DeviceLogin signs a person in with the OAuth 2.0 device authorization
// grant (RFC 8628): the CLI shows a URL and a code, the person approves
// in any browser, and the CLI receives their tokens. It needs no
// listening port and no browser on the machine running it (a jump host,
// a plant's engineering station).
type DeviceLogin struct {
	// Issuer is the OIDC issuer; its discovery document must name a
	// device_authorization_endpoint.
	Issuer string
	// ClientID is the public client the issuer registered for the CLI
	// (Entra: an app registration with "Allow public client flows";
	// Keycloak: a public client with the device grant enabled).
	ClientID string
	// Scopes asked for (default DefaultLoginScopes).
	Scopes []string
	// HTTPClient talks to the issuer (default http.DefaultClient).
	HTTPClient *http.Client
	// Prompt is given what the person must see: where to go and which
	// code to enter. It must not block for long: the code expires.
	Prompt func(DevicePrompt)
}

// DevicePrompt is what a person needs to approve a device login.
type DevicePrompt struct {
	VerificationURI string
	// VerificationURIComplete, if the issuer gives one, carries the code
	// already (for a QR code or a click).
	VerificationURIComplete string
	UserCode                string
	Expires                 time.Time
}

// ValidateLoginInputs checks what a person gives `modelfleet login`
// before anything is sent: an https issuer (http only on loopback), a
// client ID and scopes of sane size without spaces or control
// characters.
func ValidateLoginInputs(issuer, clientID string, scopes []string) error {
	if issuer == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "login: give the OIDC issuer (--issuer or $MODELFLEET_OIDC_ISSUER), e.g. https://login.microsoftonline.com/<tenant>/v2.0")
	}
	if len(issuer) > maxIssuerLen {
		return modelfleet.Errorf(modelfleet.EINVALID, "login: issuer URL over %d bytes", maxIssuerLen)
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "login: issuer %q: want an https URL without credentials, query or fragment", issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return modelfleet.Errorf(modelfleet.EINVALID, "login: issuer %q: plain http is allowed on loopback only", issuer)
		}
	default:
		return modelfleet.Errorf(modelfleet.EINVALID, "login: issuer %q: want an https URL", issuer)
	}
	if clientID == "" {
		return modelfleet.Errorf(modelfleet.EINVALID, "login: give the CLI's client ID at the issuer (--client-id or $MODELFLEET_OIDC_CLIENT_ID)")
	}
	if err := printable("client ID", clientID, maxClientIDLen); err != nil {
		return err
	}
	if len(scopes) > maxScopes {
		return modelfleet.Errorf(modelfleet.EINVALID, "login: %d scopes, at most %d", len(scopes), maxScopes)
	}
	for _, s := range scopes {
		if err := printable("scope", s, maxScopeLen); err != nil {
			return err
		}
	}
	return nil
}

func printable(what, s string, max int) error {
	if s == "" || len(s) > max {
		return modelfleet.Errorf(modelfleet.EINVALID, "login: %s %q: want 1 to %d characters", what, s, max)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return modelfleet.Errorf(modelfleet.EINVALID, "login: %s %q: no spaces or control characters", what, s)
		}
	}
	return nil
}

// SplitScopes reads a --scope value: scopes separated by spaces or
// commas.
func SplitScopes(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// Run discovers the issuer's endpoints, asks for a device code, has
// Prompt show it, and waits for the person's approval (polling at the
// interval the issuer asks for) until the code expires or ctx ends.
func (d DeviceLogin) Run(ctx context.Context) (*LoginToken, error) {
	scopes := d.Scopes
	if len(scopes) == 0 {
		scopes = DefaultLoginScopes
	}
	d.Scopes = scopes
	if err := ValidateLoginInputs(d.Issuer, d.ClientID, scopes); err != nil {
		return nil, err
	}
	if d.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, d.HTTPClient) // also oauth2.HTTPClient
	}
	p, err := oidc.NewProvider(ctx, d.Issuer)
	if err != nil {
		return nil, fmt.Errorf("login: issuer %s: discovery: %w", d.Issuer, err)
	}
	ep := p.Endpoint()
	if ep.DeviceAuthURL == "" {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "login: issuer %s offers no device authorization endpoint (no device_authorization_endpoint in its discovery document): enable the device code grant for the client (Keycloak: the client's \"OAuth 2.0 Device Authorization Grant\"; Entra ID: \"Allow public client flows\"), or use $MODELFLEET_TOKEN", d.Issuer)
	}
	// A public client (the CLI holds no secret) names itself in the form.
	ep.AuthStyle = oauth2.AuthStyleInParams
	conf := &oauth2.Config{ClientID: d.ClientID, Endpoint: ep, Scopes: scopes}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, loginError(d, "asking for a device code", err)
	}
	if da.UserCode == "" || da.DeviceCode == "" || da.VerificationURI == "" {
		return nil, fmt.Errorf("login: issuer %s answered the device authorization request without a user code, device code or verification URI", d.Issuer)
	}
	if d.Prompt != nil {
		d.Prompt(DevicePrompt{VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete, UserCode: da.UserCode, Expires: da.Expiry})
	}
	if da.Expiry.IsZero() {
		// expires_in is required (RFC 8628 §3.2); without it, wait no
		// longer than issuers' usual 15 minutes.
		da.Expiry = time.Now().Add(15 * time.Minute)
	}
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// oauth2 stops polling when the code's expires_in passes.
			return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "login: the code %s expired before it was approved: run `modelfleet login` again and enter the new code", da.UserCode)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("login: stopped waiting for approval: %w", ctx.Err())
		}
		return nil, loginError(d, "waiting for approval", err)
	}
	if tok.AccessToken == "" {
		return nil, fmt.Errorf("login: issuer %s returned no access token", d.Issuer)
	}
	return &LoginToken{
		Issuer: d.Issuer, ClientID: d.ClientID, Scopes: scopes, TokenURL: ep.TokenURL,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry,
	}, nil
}

// loginError turns the issuer's OAuth error into what the person should
// do about it. The issuer's description is kept; no token is in it.
func loginError(d DeviceLogin, doing string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("login: %s at %s: %w", doing, d.Issuer, err)
	}
	desc := re.ErrorDescription
	if desc == "" && re.ErrorCode == "" && re.Response != nil {
		desc = re.Response.Status
	}
	switch re.ErrorCode {
	case "access_denied":
		return modelfleet.Errorf(modelfleet.EFORBIDDEN, "login: the sign-in was denied at the issuer (%s)", orDash(desc))
	case "expired_token":
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "login: the code expired before it was approved: run `modelfleet login` again")
	case "invalid_client", "unauthorized_client":
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "login: the issuer refused client %q (%s: %s): check --client-id, and that the client is public and may use the device code grant", d.ClientID, re.ErrorCode, orDash(desc))
	case "invalid_scope":
		return modelfleet.Errorf(modelfleet.EINVALID, "login: the issuer refused the scopes %q (%s); Entra ID wants api://<gateway-app>/.default", strings.Join(d.Scopes, " "), orDash(desc))
	}
	code := re.ErrorCode
	if code == "" {
		code = "error"
	}
	// Some issuers answer an unknown client with a generic error.
	return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "login: %s at %s: %s: %s (check --client-id %q)", doing, d.Issuer, code, orDash(desc), d.ClientID)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
