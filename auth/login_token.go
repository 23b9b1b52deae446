package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/flock"
)

// LoginTokenVersion is the version of the file `modelfleet login` writes.
const LoginTokenVersion = 1

// maxLoginTokenSize bounds the login token file (Entra's tokens with many
// groups run to a few KiB).
const maxLoginTokenSize = 64 << 10

// refreshMargin: a token this close to its expiry is refreshed first,
// so it does not expire on its way to the gateway.
const refreshMargin = 30 * time.Second

// LoginToken is what `modelfleet login` keeps: the person's tokens and
// where to refresh them. It is a credential: it is written 0600 and
// never logged (String and LogValue name only the issuer and expiry).
type LoginToken struct {
	Version      int       `json:"version"`
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"clientId"`
	Scopes       []string  `json:"scopes,omitempty"`
	TokenURL     string    `json:"tokenUrl"`
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// String names the login without its secrets.
func (t *LoginToken) String() string {
	if t == nil {
		return "no login"
	}
	return fmt.Sprintf("login at %s as client %s (expires %s, refresh token: %v)", t.Issuer, t.ClientID, t.Expiry.Format(time.RFC3339), t.RefreshToken != "")
}

// LogValue keeps the tokens out of structured logs.
func (t *LoginToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// ParseLoginToken reads a login token file strictly.
func ParseLoginToken(b []byte) (*LoginToken, error) {
	if len(b) > maxLoginTokenSize {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "login token: %d bytes, at most %d", len(b), maxLoginTokenSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t LoginToken
	if err := dec.Decode(&t); err != nil {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "login token: %v", err)
	}
	switch {
	case t.Version != LoginTokenVersion:
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "login token: version %d, want %d: run `modelfleet login` again", t.Version, LoginTokenVersion)
	case t.AccessToken == "" || len(t.AccessToken) > 16<<10:
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "login token: no access token, or one over 16 KiB")
	case t.RefreshToken != "" && t.TokenURL == "":
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "login token: a refresh token but no token endpoint")
	}
	if err := ValidateLoginInputs(t.Issuer, t.ClientID, t.Scopes); err != nil {
		return nil, fmt.Errorf("login token: %w", err)
	}
	return &t, nil
}

// LoginFile is the login token's file and the CLI's credential from it:
// Token returns the access token, refreshed with the refresh token (and
// written back) when it has expired.
type LoginFile struct {
	Path string
	// HTTPClient talks to the issuer's token endpoint (default
	// http.DefaultClient).
	HTTPClient *http.Client

	mu  sync.Mutex
	cur *LoginToken
}

// Load reads the file. A file others may read is refused, as ssh does
// with a private key.
func (f *LoginFile) Load() (*LoginToken, error) {
	fi, err := os.Stat(f.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("login token %s: none: run `modelfleet login`", f.Path)
		}
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("login token %s: readable by others (mode %o): `chmod 600` it, or run `modelfleet login` again", f.Path, fi.Mode().Perm())
	}
	if fi.Size() > maxLoginTokenSize {
		return nil, modelfleet.Errorf(modelfleet.ETOOLARGE, "login token %s: %d bytes, at most %d", f.Path, fi.Size(), maxLoginTokenSize)
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	t, err := ParseLoginToken(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return t, nil
}

// Save writes t (0600, in a directory only the user may enter),
// replacing the file whole so a reader never sees half a token.
func (f *LoginFile) Save(t *LoginToken) error {
	if err := f.save(t); err != nil {
		return err
	}
	f.mu.Lock()
	f.cur = t
	f.mu.Unlock()
	return nil
}

func (f *LoginFile) save(t *LoginToken) error {
	t.Version = LoginTokenVersion
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("login token: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".token-*.json")
	if err != nil {
		return fmt.Errorf("login token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("login token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("login token: %w", err)
	}
	return nil
}

// Remove deletes the file; false if there was none.
func (f *LoginFile) Remove() (bool, error) {
	f.mu.Lock()
	f.cur = nil
	f.mu.Unlock()
	_ = os.Remove(f.Path + ".lock")
	err := os.Remove(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Token is a TokenSource: the access token, refreshed when it expires.
func (f *LoginFile) Token() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !fresh(f.cur) {
		// Another process may have refreshed it meanwhile.
		t, err := f.Load()
		if err != nil {
			return "", err
		}
		f.cur = t
	}
	if fresh(f.cur) {
		return f.cur.AccessToken, nil
	}
	// Refresh under the file's lock, with the file as it is once the lock
	// is ours: another process may have refreshed (and rotated) it.
	if unlock, err := flock.Lock(f.Path+".lock", 0o600); err == nil {
		defer unlock()
		t, err := f.Load()
		if err != nil {
			return "", err
		}
		if f.cur = t; fresh(t) {
			return t.AccessToken, nil
		}
	}
	t, err := f.refresh(f.cur)
	if err != nil {
		return "", err
	}
	if err := f.save(t); err != nil {
		return "", err
	}
	f.cur = t
	return t.AccessToken, nil
}

func fresh(t *LoginToken) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || time.Until(t.Expiry) > refreshMargin)
}

func (f *LoginFile) refresh(old *LoginToken) (*LoginToken, error) {
	if old.RefreshToken == "" {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "login at %s expired at %s and has no refresh token (ask for the offline_access scope): run `modelfleet login` again", old.Issuer, old.Expiry.Format(time.RFC3339))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if f.HTTPClient != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, f.HTTPClient)
	}
	conf := &oauth2.Config{ClientID: old.ClientID, Scopes: old.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: old.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	// An empty access token makes the source refresh at once.
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken}).Token()
	if err != nil {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "login at %s expired and refreshing it failed (%v): run `modelfleet login` again", old.Issuer, err)
	}
	t := *old
	t.AccessToken, t.Expiry = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" { // rotated
		t.RefreshToken = tok.RefreshToken
	}
	return &t, nil
}
