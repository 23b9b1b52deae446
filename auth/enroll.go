package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Enrolment defaults.
const (
	DefaultJoinTokenTTL = time.Hour
	MaxJoinTokenTTL     = 7 * 24 * time.Hour
	joinTokenPrefix     = "mfjoin1"
	// keepSerials is how many certificates per site the store remembers,
	// so revoking a site revokes every certificate it may still hold
	// (renewals are at two thirds of a 7-day lifetime).
	keepSerials = 16
)

// Enrolments is the gateway's record of join tokens, issued site
// certificates and revocations (a JSON file beside the directory; written
// atomically on every change).
type Enrolments struct {
	mu   sync.Mutex
	path string
	st   enrolState
}

type enrolState struct {
	// Tokens by the SHA-256 of their secret: the secret itself is never
	// stored.
	Tokens map[string]joinToken `json:"tokens"`
	// Serials issued to each site, newest last.
	Serials map[string][]string `json:"serials"`
	// Revoked certificate serials, with when (kept until they expire).
	Revoked map[string]time.Time `json:"revoked"`
}

type joinToken struct {
	Site    string            `json:"site"`
	Labels  map[string]string `json:"labels,omitempty"`
	Expires time.Time         `json:"expires"`
	By      string            `json:"by"`
}

// OpenEnrolments opens (or creates) the store at path.
func OpenEnrolments(path string) (*Enrolments, error) {
	e := &Enrolments{path: path, st: enrolState{Tokens: map[string]joinToken{}, Serials: map[string][]string{}, Revoked: map[string]time.Time{}}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return e, os.MkdirAll(filepath.Dir(path), 0o700)
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &e.st); err != nil {
		return nil, fmt.Errorf("enrolments %s: %w", path, err)
	}
	// A file written by hand may lack a section.
	if e.st.Tokens == nil {
		e.st.Tokens = map[string]joinToken{}
	}
	if e.st.Serials == nil {
		e.st.Serials = map[string][]string{}
	}
	if e.st.Revoked == nil {
		e.st.Revoked = map[string]time.Time{}
	}
	return e, nil
}

func (e *Enrolments) save() error {
	b, err := json.MarshalIndent(e.st, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(e.path, b, 0o600)
}

// JoinToken is what `modelfleet site enroll` prints: the site, a one-time
// secret, and the fingerprint of the CA the agent will trust.
type JoinToken struct {
	Site, Secret, CAFingerprint string
}

func (t JoinToken) String() string {
	return strings.Join([]string{joinTokenPrefix, t.Site, t.Secret, t.CAFingerprint}, ".")
}

// ParseJoinToken reads a join token.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 4 || parts[0] != joinTokenPrefix {
		return JoinToken{}, modelfleet.Errorf(modelfleet.EINVALID, "not a join token: want %s.<site>.<secret>.<ca-sha256> as `modelfleet site enroll` prints", joinTokenPrefix)
	}
	// Site IDs may hold dots; the secret and fingerprint never do.
	n := len(parts)
	t := JoinToken{Site: strings.Join(parts[1:n-2], "."), Secret: parts[n-2], CAFingerprint: parts[n-1]}
	if err := modelfleet.ValidateName("site id", t.Site); err != nil {
		return JoinToken{}, err
	}
	if len(t.Secret) != 43 || len(t.CAFingerprint) != 64 {
		return JoinToken{}, modelfleet.Errorf(modelfleet.EINVALID, "join token: malformed secret or CA fingerprint")
	}
	return t, nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// NewJoinToken creates a one-time token for site, valid for ttl.
func (e *Enrolments) NewJoinToken(site string, labels map[string]string, ttl time.Duration, by, caFingerprint string) (JoinToken, time.Time, error) {
	if err := modelfleet.ValidateName("site id", site); err != nil {
		return JoinToken{}, time.Time{}, err
	}
	if ttl <= 0 {
		ttl = DefaultJoinTokenTTL
	}
	if ttl > MaxJoinTokenTTL {
		return JoinToken{}, time.Time{}, modelfleet.Errorf(modelfleet.EINVALID, "a join token lives at most %s", MaxJoinTokenTTL)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return JoinToken{}, time.Time{}, err
	}
	t := JoinToken{Site: site, Secret: base64.RawURLEncoding.EncodeToString(raw[:]), CAFingerprint: caFingerprint}
	exp := time.Now().Add(ttl).UTC()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gc()
	e.st.Tokens[hashSecret(t.Secret)] = joinToken{Site: site, Labels: labels, Expires: exp, By: by}
	return t, exp, e.save()
}

// Redeem spends a join token: it is valid once, before it expires, and
// for the site it was made for. It returns the labels given at enrol.
func (e *Enrolments) Redeem(t JoinToken) (map[string]string, error) {
	h := hashSecret(t.Secret)
	e.mu.Lock()
	defer e.mu.Unlock()
	jt, ok := e.st.Tokens[h]
	if !ok || subtle.ConstantTimeCompare([]byte(jt.Site), []byte(t.Site)) != 1 {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "join token unknown or already used: ask an admin for a new one (`modelfleet site enroll %s`)", t.Site)
	}
	delete(e.st.Tokens, h)
	if err := e.save(); err != nil {
		return nil, err
	}
	if time.Now().After(jt.Expires) {
		return nil, modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "join token for %s expired at %s: ask an admin for a new one", t.Site, jt.Expires.Format(time.RFC3339))
	}
	return jt.Labels, nil
}

// Issued records a certificate issued to site.
func (e *Enrolments) Issued(site, serialHex string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := append(e.st.Serials[site], serialHex)
	if len(s) > keepSerials {
		s = s[len(s)-keepSerials:]
	}
	e.st.Serials[site] = s
	return e.save()
}

// Revoke revokes every certificate the store issued site; the gateway
// refuses them from the next request on. Enrolling the site again issues
// a new one.
func (e *Enrolments) Revoke(site string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now().UTC()
	n := 0
	for _, s := range e.st.Serials[site] {
		if _, ok := e.st.Revoked[s]; !ok {
			e.st.Revoked[s] = now
			n++
		}
	}
	delete(e.st.Serials, site)
	// A token not yet redeemed would bring the site straight back.
	for h, t := range e.st.Tokens {
		if t.Site == site {
			delete(e.st.Tokens, h)
		}
	}
	return n, e.save()
}

// IsRevoked reports whether a certificate serial was revoked.
func (e *Enrolments) IsRevoked(serialHex string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.st.Revoked[serialHex]
	return ok
}

// Sites lists the sites holding certificates the store issued.
func (e *Enrolments) Sites() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.st.Serials))
}

// gc drops expired tokens and revocations older than any certificate.
func (e *Enrolments) gc() {
	now := time.Now()
	for h, t := range e.st.Tokens {
		if now.After(t.Expires) {
			delete(e.st.Tokens, h)
		}
	}
	for s, at := range e.st.Revoked {
		if now.Sub(at) > 2*DefaultSiteCertLifetime {
			delete(e.st.Revoked, s)
		}
	}
}
