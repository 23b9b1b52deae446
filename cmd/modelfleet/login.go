package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/auth"
)

// loginTokenPath is where `modelfleet login` keeps the person's token:
// <user config dir>/modelfleet/token.json (Linux: $XDG_CONFIG_HOME or
// ~/.config; macOS: ~/Library/Application Support; Windows: %AppData%).
func loginTokenPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("login token: no user config directory: %w", err)
	}
	return filepath.Join(dir, "modelfleet", "token.json"), nil
}

func newLoginCmd() *cobra.Command {
	var issuer, clientID, scope string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in with your OIDC issuer (device code: open a URL, enter a code); the CLI then sends your token to the gateway",
		Long: `Sign in with the OAuth 2.0 device authorization grant (RFC 8628): the
command prints a URL and a code (on stderr), you approve in any browser,
and the token is kept, readable by you only, in
<user config dir>/modelfleet/token.json. Commands send it to the gateway
and refresh it when it expires; ` + "`modelfleet logout`" + ` removes it.

Microsoft Entra ID:
  modelfleet login --issuer https://login.microsoftonline.com/<tenant>/v2.0 \
    --client-id <CLI app ID> --scope "api://<gateway app>/.default offline_access"
Keycloak:
  modelfleet login --issuer https://kc.example.com/realms/<realm> --client-id modelfleet-cli`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := loginTokenPath()
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			d := auth.DeviceLogin{Issuer: issuer, ClientID: clientID, Scopes: auth.SplitScopes(scope), Prompt: func(p auth.DevicePrompt) {
				printDevicePrompt(stderr, p)
			}}
			tok, err := d.Run(cmd.Context())
			if err != nil {
				return err
			}
			if err := (&auth.LoginFile{Path: path}).Save(tok); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "Signed in at %s; token kept in %s", tok.Issuer, path)
			if !tok.Expiry.IsZero() {
				fmt.Fprintf(stderr, " (expires %s", tok.Expiry.Local().Format(time.DateTime))
				if tok.RefreshToken != "" {
					fmt.Fprint(stderr, "; refreshed by itself")
				}
				fmt.Fprint(stderr, ")")
			}
			fmt.Fprintln(stderr)
			if tok.RefreshToken == "" {
				fmt.Fprintln(stderr, "The issuer gave no refresh token (ask for the offline_access scope): sign in again when it expires.")
			}
			if os.Getenv("MODELFLEET_TOKEN") != "" || os.Getenv("MODELFLEET_TOKEN_FILE") != "" {
				fmt.Fprintln(stderr, "Note: $MODELFLEET_TOKEN or $MODELFLEET_TOKEN_FILE is set and goes first: unset it to use this login.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", os.Getenv("MODELFLEET_OIDC_ISSUER"), "OIDC issuer, as the gateway's --oidc-issuer ($MODELFLEET_OIDC_ISSUER)")
	f.StringVar(&clientID, "client-id", os.Getenv("MODELFLEET_OIDC_CLIENT_ID"), "the CLI's public client ID at the issuer ($MODELFLEET_OIDC_CLIENT_ID)")
	f.StringVar(&scope, "scope", os.Getenv("MODELFLEET_OIDC_SCOPE"), `scopes, space or comma separated (default "openid offline_access"; Entra ID: "api://<gateway app>/.default offline_access") ($MODELFLEET_OIDC_SCOPE)`)
	return cmd
}

func printDevicePrompt(w io.Writer, p auth.DevicePrompt) {
	fmt.Fprintf(w, "To sign in, open %s and enter the code %s", p.VerificationURI, p.UserCode)
	if !p.Expires.IsZero() {
		fmt.Fprintf(w, " (within %s)", time.Until(p.Expires).Round(time.Second))
	}
	fmt.Fprintln(w, ".")
	if p.VerificationURIComplete != "" && !strings.EqualFold(p.VerificationURIComplete, p.VerificationURI) {
		fmt.Fprintf(w, "Or open %s\n", p.VerificationURIComplete)
	}
	fmt.Fprintln(w, "Waiting for approval...")
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the token `modelfleet login` kept",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := loginTokenPath()
			if err != nil {
				return err
			}
			ok, err := (&auth.LoginFile{Path: path}).Remove()
			if err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			if ok {
				fmt.Fprintf(cmd.ErrOrStderr(), "Signed out: removed %s\n", path)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "Not signed in (no %s)\n", path)
			}
			return nil
		},
	}
}
