package auth

import (
	"context"
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
// certificates and revocations. FileEnrolments keeps it in a file, for one
// gateway (the embedded default); PostgresEnrolments in the database any
// number of gateway replicas share. A join token's secret is never stored,
// only its SHA-256.
type Enrolments interface {
	// NewJoinToken creates a one-time token for site, valid for ttl
	// (DefaultJoinTokenTTL if zero, at most MaxJoinTokenTTL), made by
	// by; caFingerprint is what the agent will pin.
	NewJoinToken(ctx context.Context, site string, labels map[string]string, ttl time.Duration, by, caFingerprint string) (JoinToken, time.Time, error)
	// Redeem spends a join token: it is valid once, ever (across every
	// replica), before it expires, and for the site it was made for. It
	// returns the labels given at enrol. An expired token is spent too.
	Redeem(ctx context.Context, t JoinToken) (map[string]string, error)
	// Issued records a certificate issued to site. renewedFrom is the
	// serial of the certificate that asked for the renewal (empty at
	// enrolment): if it is revoked, the new one is not recorded and
	// Issued refuses (EUNAUTHORIZED), so that a replica yet to see a
	// revocation cannot extend the revoked certificate's life.
	Issued(ctx context.Context, site, serialHex, renewedFrom string) error
	// Revoke revokes every certificate the store issued site and the
	// site's unspent join tokens; it returns how many certificates. The
	// gateway that revokes refuses them from the next request on, the
	// other replicas within their revocation poll.
	Revoke(ctx context.Context, site string) (int, error)
	// IsRevoked reports whether a certificate serial was revoked. It is
	// asked on every mTLS request, and answers from memory.
	IsRevoked(serialHex string) bool
	// Sites lists the sites holding certificates the store issued.
	Sites(ctx context.Context) ([]string, error)
	// Close stops the store (a database pool stays its owner's).
	Close() error
}

// FileEnrolments keeps the enrolments of one gateway in a file: a JSON
// snapshot beside the directory and a journal of the changes since (path +
// ".log", one JSON line per change, synced before the change is
// acknowledged). The snapshot is rewritten only when the journal outgrows
// it, so enrolling n sites writes O(n) bytes, not the O(n²) of rewriting
// the whole store per change. Each gateway reads it once, at start: it is
// not for replicas to share (PostgresEnrolments is).
type FileEnrolments struct {
	mu      sync.Mutex
	path    string
	st      enrolState
	journal *os.File
	entries int // lines in the journal
	now     func() time.Time
}

var _ Enrolments = (*FileEnrolments)(nil)

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
func openSnapshot(path string) (*FileEnrolments, error) {
	e := &FileEnrolments{path: path, now: time.Now, st: enrolState{Tokens: map[string]joinToken{}, Serials: map[string][]string{}, Revoked: map[string]time.Time{}}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return e, nil
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

// readEnrolments reads the store at path without opening it for writing:
// its snapshot, then the journal's changes replayed on top. A last line
// cut short by a crash is ignored (its change was never acknowledged); a
// bad line before it is an error. good is the length of the journal's
// whole lines. Neither file existing is an empty store.
func readEnrolments(path string) (e *FileEnrolments, good int, err error) {
	if e, err = openSnapshot(path); err != nil {
		return nil, 0, err
	}
	b, err := os.ReadFile(path + ".log")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, 0, err
	}
	for len(b[good:]) > 0 {
		line, _, complete := strings.Cut(string(b[good:]), "\n")
		var c change
		if err := json.Unmarshal([]byte(line), &c); err != nil || !complete {
			if !complete {
				break
			}
			return nil, 0, fmt.Errorf("enrolments %s.log: line %d: %v", path, e.entries+1, err)
		}
		e.apply(c)
		e.entries++
		good += len(line) + 1
	}
	return e, good, nil
}

// OpenEnrolments opens (or creates) the store at path (readEnrolments),
// cutting off a last journal line a crash left short.
func OpenEnrolments(path string) (*FileEnrolments, error) {
	e, good, err := readEnrolments(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
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
func (e *FileEnrolments) Close() error {
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
func (e *FileEnrolments) apply(c change) {
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
func (e *FileEnrolments) record(c change) error {
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
func (e *FileEnrolments) compact() error {
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

// newJoinToken checks a request for a join token and makes its secret;
// hash is what a store keeps.
func newJoinToken(site string, ttl time.Duration, caFingerprint string, now time.Time) (t JoinToken, hash string, exp time.Time, err error) {
	if err := modelfleet.ValidateName("site id", site); err != nil {
		return JoinToken{}, "", time.Time{}, err
	}
	if ttl <= 0 {
		ttl = DefaultJoinTokenTTL
	}
	if ttl > MaxJoinTokenTTL {
		return JoinToken{}, "", time.Time{}, modelfleet.Errorf(modelfleet.EINVALID, "a join token lives at most %s", MaxJoinTokenTTL)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return JoinToken{}, "", time.Time{}, err
	}
	t = JoinToken{Site: site, Secret: base64.RawURLEncoding.EncodeToString(raw[:]), CAFingerprint: caFingerprint}
	return t, hashSecret(t.Secret), now.Add(ttl).UTC(), nil
}

// errTokenUnknown is Redeem's answer to a token the store does not hold
// (never made, already spent, or made for another site).
func errTokenUnknown(site string) error {
	return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "join token unknown or already used: ask an admin for a new one (`modelfleet site enroll %s`)", site)
}

func errTokenExpired(site string, at time.Time) error {
	return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "join token for %s expired at %s: ask an admin for a new one", site, at.Format(time.RFC3339))
}

func errRenewRevoked(site, serial string) error {
	return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "site %s's certificate %s was revoked: enrol the site again (`modelfleet site enroll %s`)", site, serial, site)
}

// NewJoinToken creates a one-time token for site, valid for ttl.
func (e *FileEnrolments) NewJoinToken(_ context.Context, site string, labels map[string]string, ttl time.Duration, by, caFingerprint string) (JoinToken, time.Time, error) {
	t, h, exp, err := newJoinToken(site, ttl, caFingerprint, e.now())
	if err != nil {
		return JoinToken{}, time.Time{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return t, exp, e.record(change{Token: &tokenChange{Hash: h, Token: joinToken{Site: site, Labels: labels, Expires: exp, By: by}}})
}

// Redeem spends a join token: it is valid once, before it expires, and
// for the site it was made for. It returns the labels given at enrol.
func (e *FileEnrolments) Redeem(_ context.Context, t JoinToken) (map[string]string, error) {
	h := hashSecret(t.Secret)
	e.mu.Lock()
	defer e.mu.Unlock()
	jt, ok := e.st.Tokens[h]
	if !ok || subtle.ConstantTimeCompare([]byte(jt.Site), []byte(t.Site)) != 1 {
		return nil, errTokenUnknown(t.Site)
	}
	if err := e.record(change{Redeem: h}); err != nil {
		return nil, err
	}
	if e.now().After(jt.Expires) {
		return nil, errTokenExpired(t.Site, jt.Expires)
	}
	return jt.Labels, nil
}

// Issued records a certificate issued to site, unless it renews a revoked
// one (renewedFrom).
func (e *FileEnrolments) Issued(_ context.Context, site, serialHex, renewedFrom string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.st.Revoked[renewedFrom]; ok && renewedFrom != "" {
		return errRenewRevoked(site, renewedFrom)
	}
	return e.record(change{Issued: &[2]string{site, serialHex}})
}

// Revoke revokes every certificate the store issued site; the gateway
// refuses them from the next request on. Enrolling the site again issues
// a new one.
func (e *FileEnrolments) Revoke(_ context.Context, site string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.st.Serials[site] {
		if _, ok := e.st.Revoked[s]; !ok {
			n++
		}
	}
	return n, e.record(change{Revoked: &revocation{Site: site, At: e.now().UTC()}})
}

// IsRevoked reports whether a certificate serial was revoked.
func (e *FileEnrolments) IsRevoked(serialHex string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.st.Revoked[serialHex]
	return ok
}

// Sites lists the sites holding certificates the store issued.
func (e *FileEnrolments) Sites(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.st.Serials)), nil
}

// gc drops expired tokens and revocations older than any certificate.
func (e *FileEnrolments) gc() {
	now := e.now()
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
