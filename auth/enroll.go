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
// certificates and revocations: a JSON snapshot beside the directory and a
// journal of the changes since (path + ".log", one JSON line per change,
// synced before the change is acknowledged). The snapshot is rewritten
// only when the journal outgrows it, so enrolling n sites writes O(n)
// bytes, not the O(n²) of rewriting the whole store per change.
type Enrolments struct {
	mu      sync.Mutex
	path    string
	st      enrolState
	journal *os.File
	entries int // lines in the journal
}

// change is one journal line: exactly one field is set.
type change struct {
	Token   *tokenChange `json:"token,omitempty"`   // a join token made
	Redeem  string       `json:"redeem,omitempty"`  // a join token spent (its hash)
	Issued  *[2]string   `json:"issued,omitempty"`  // site, certificate serial
	Revoked *revocation  `json:"revoked,omitempty"` // a site revoked
}

type tokenChange struct {
	Hash  string    `json:"hash"`
	Token joinToken `json:"t"`
}

type revocation struct {
	Site string    `json:"site"`
	At   time.Time `json:"at"`
}

// compactAt is the fewest journal lines before the snapshot is rewritten
// (or the size of the state, if larger).
const compactAt = 1024

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

// openSnapshot reads the snapshot at path (or starts an empty one).
func openSnapshot(path string) (*Enrolments, error) {
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

// OpenEnrolments opens (or creates) the store at path: its snapshot, then
// the journal's changes replayed on top. A last line cut short by a crash
// is dropped (its change was never acknowledged); a bad line before it is
// an error.
func OpenEnrolments(path string) (*Enrolments, error) {
	e, err := openSnapshot(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path + ".log")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	good := 0 // bytes of whole, valid lines
	for len(b[good:]) > 0 {
		line, _, complete := strings.Cut(string(b[good:]), "\n")
		var c change
		if err := json.Unmarshal([]byte(line), &c); err != nil || !complete {
			if !complete {
				break
			}
			return nil, fmt.Errorf("enrolments %s.log: line %d: %v", path, e.entries+1, err)
		}
		e.apply(c)
		e.entries++
		good += len(line) + 1
	}
	// O_APPEND: each line lands whole at the end of the file.
	if e.journal, err = os.OpenFile(path+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	if err := e.journal.Truncate(int64(good)); err != nil {
		e.journal.Close()
		return nil, err
	}
	e.gc()
	return e, nil
}

// Close closes the journal.
func (e *Enrolments) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.journal == nil {
		return nil
	}
	err := e.journal.Close()
	e.journal = nil
	return err
}

// apply makes one change to the state. Replaying a change already in the
// snapshot (a crash between rewriting it and emptying the journal) leaves
// the state as it was.
func (e *Enrolments) apply(c change) {
	switch {
	case c.Token != nil:
		e.st.Tokens[c.Token.Hash] = c.Token.Token
	case c.Redeem != "":
		delete(e.st.Tokens, c.Redeem)
	case c.Issued != nil:
		site, serial := c.Issued[0], c.Issued[1]
		s := e.st.Serials[site]
		if slices.Contains(s, serial) {
			return
		}
		s = append(s, serial)
		if len(s) > keepSerials {
			s = s[len(s)-keepSerials:]
		}
		e.st.Serials[site] = s
	case c.Revoked != nil:
		for _, s := range e.st.Serials[c.Revoked.Site] {
			if _, ok := e.st.Revoked[s]; !ok {
				e.st.Revoked[s] = c.Revoked.At
			}
		}
		delete(e.st.Serials, c.Revoked.Site)
		// A token not yet redeemed would bring the site straight back.
		for h, t := range e.st.Tokens {
			if t.Site == c.Revoked.Site {
				delete(e.st.Tokens, h)
			}
		}
	}
}

// record applies a change and makes it durable: a journal line, synced;
// the snapshot is rewritten once the journal outgrows the state.
func (e *Enrolments) record(c change) error {
	e.apply(c)
	if e.journal == nil {
		return errors.New("enrolments: the store is closed")
	}
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := e.journal.Write(append(line, '\n')); err != nil {
		return err
	}
	if err := e.journal.Sync(); err != nil {
		return err
	}
	e.entries++
	if e.entries < max(compactAt, len(e.st.Tokens)+len(e.st.Serials)+len(e.st.Revoked)) {
		return nil
	}
	return e.compact()
}

// compact rewrites the snapshot (synced, then renamed into place) and
// empties the journal.
func (e *Enrolments) compact() error {
	e.gc()
	b, err := json.MarshalIndent(e.st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(e.path, b, 0o600); err != nil {
		return err
	}
	if err := e.journal.Truncate(0); err != nil {
		return err
	}
	e.entries = 0
	return nil
}

// writeFileSync writes a file atomically and durably: a synced temporary
// file renamed into place, and the directory synced.
func writeFileSync(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
	return t, exp, e.record(change{Token: &tokenChange{Hash: hashSecret(t.Secret), Token: joinToken{Site: site, Labels: labels, Expires: exp, By: by}}})
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
	if err := e.record(change{Redeem: h}); err != nil {
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
	return e.record(change{Issued: &[2]string{site, serialHex}})
}

// Revoke revokes every certificate the store issued site; the gateway
// refuses them from the next request on. Enrolling the site again issues
// a new one.
func (e *Enrolments) Revoke(site string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.st.Serials[site] {
		if _, ok := e.st.Revoked[s]; !ok {
			n++
		}
	}
	return n, e.record(change{Revoked: &revocation{Site: site, At: time.Now().UTC()}})
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
