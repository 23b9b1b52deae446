package auth

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// testClock is time.Now moved by an offset a test sets.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// enrolStore is one shared enrolment store under test and the gateways
// (replicas) reading it.
type enrolStore interface {
	// replica opens one gateway's Enrolments on the store, re-reading
	// revocations every poll where it polls. The file store belongs to
	// one gateway: its replicas are all one object.
	replica(t *testing.T, poll time.Duration) Enrolments
	// closeAll closes every replica: the next one reads the store afresh.
	closeAll(t *testing.T)
	// dump is everything the store keeps about join tokens, as text.
	dump(t *testing.T) string
}

type fileStore struct {
	path string
	clk  *testClock
	e    *FileEnrolments
}

func (s *fileStore) replica(t *testing.T, _ time.Duration) Enrolments {
	if s.e == nil {
		e, err := OpenEnrolments(s.path)
		if err != nil {
			t.Fatal(err)
		}
		e.now = s.clk.Now
		s.e = e
		t.Cleanup(func() { e.Close() })
	}
	return s.e
}

func (s *fileStore) closeAll(*testing.T) {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

func (s *fileStore) dump(t *testing.T) string {
	snap, _ := os.ReadFile(s.path)
	log, err := os.ReadFile(s.path + ".log")
	if err != nil {
		t.Fatal(err)
	}
	return string(snap) + string(log)
}

type pgStore struct {
	dsn   string
	clk   *testClock
	open  []*PostgresEnrolments
	pools []*pgxpool.Pool
}

func (s *pgStore) replica(t *testing.T, poll time.Duration) Enrolments {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	e, err := OpenPostgresEnrolments(ctx, pool, PostgresEnrolmentsOptions{Poll: poll, now: s.clk.Now})
	if err != nil {
		pool.Close()
		t.Fatal(err)
	}
	s.open, s.pools = append(s.open, e), append(s.pools, pool)
	t.Cleanup(func() { e.Close(); pool.Close() })
	return e
}

func (s *pgStore) closeAll(*testing.T) {
	for i, e := range s.open {
		e.Close()
		s.pools[i].Close()
	}
	s.open, s.pools = nil, nil
}

func (s *pgStore) dump(t *testing.T) string {
	pool, err := pgxpool.New(context.Background(), s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var out string
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(row_to_json(t)::text, E'\n'), '') FROM enrol_tokens t`).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnrolmentsConformance runs one suite against both stores: the file
// (one gateway) and PostgreSQL (replicas, each with a pool of its own, on
// one database).
func TestEnrolmentsConformance(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T, clk *testClock) enrolStore
	}{
		{"file", func(t *testing.T, clk *testClock) enrolStore {
			return &fileStore{path: filepath.Join(t.TempDir(), "enrolments.json"), clk: clk}
		}},
		{"postgres", func(t *testing.T, clk *testClock) enrolStore {
			return &pgStore{dsn: pgtest.DSN(t), clk: clk}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range enrolCases {
				t.Run(c.name, func(t *testing.T) {
					clk := &testClock{}
					c.run(t, b.open(t, clk), clk)
				})
			}
		})
	}
}

const testFP = "abababababababababababababababababababababababababababababababab"

var enrolCases = []struct {
	name string
	run  func(t *testing.T, s enrolStore, clk *testClock)
}{
	{"TokenMadeAtOneReplicaRedeemedAtAnother", func(t *testing.T, s enrolStore, _ *testClock) {
		ctx := context.Background()
		a, b := s.replica(t, time.Hour), s.replica(t, time.Hour)
		tok, exp, err := a.NewJoinToken(ctx, "site-1", map[string]string{"plant": "a"}, time.Hour, "admin@x", testFP)
		if err != nil {
			t.Fatal(err)
		}
		if exp.IsZero() || tok.Site != "site-1" || tok.CAFingerprint != testFP {
			t.Fatalf("token %+v, expires %v", tok, exp)
		}
		// Only the secret's hash is kept.
		if d := s.dump(t); strings.Contains(d, tok.Secret) || !strings.Contains(d, hashSecret(tok.Secret)) {
			t.Fatalf("the store holds the secret, or not its hash:\n%s", d)
		}
		// For another site: refused, and not spent.
		if _, err := b.Redeem(ctx, JoinToken{Site: "site-2", Secret: tok.Secret}); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
			t.Errorf("the token for another site: %v", err)
		}
		labels, err := b.Redeem(ctx, tok)
		if err != nil || labels["plant"] != "a" || len(labels) != 1 {
			t.Fatalf("redeemed at the other replica: %v, %v", labels, err)
		}
		for i, r := range []Enrolments{a, b} {
			if _, err := r.Redeem(ctx, tok); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED || !strings.Contains(err.Error(), "unknown or already used") {
				t.Errorf("spent token again at replica %d: %v", i, err)
			}
		}
		// A token without labels, made at b, redeemed at a after a restart
		// of both.
		spare, _, err := b.NewJoinToken(ctx, "site-3", nil, 0, "admin@x", testFP)
		if err != nil {
			t.Fatal(err)
		}
		s.closeAll(t)
		a = s.replica(t, time.Hour)
		if labels, err := a.Redeem(ctx, spare); err != nil || len(labels) != 0 {
			t.Errorf("after a restart: %v, %v", labels, err)
		}
		if _, err := a.Redeem(ctx, tok); err == nil {
			t.Error("a spent token was accepted after a restart")
		}
		// Bad requests.
		if _, _, err := a.NewJoinToken(ctx, "site-4", nil, 30*24*time.Hour, "admin@x", testFP); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("a month-long token: %v", err)
		}
		if _, _, err := a.NewJoinToken(ctx, "../x", nil, 0, "admin@x", testFP); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("a bad site id: %v", err)
		}
		if _, err := a.Redeem(ctx, JoinToken{Site: "site-1", Secret: strings.Repeat("x", 43)}); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
			t.Errorf("a token never made: %v", err)
		}
	}},
	{"TokenRedeemedTwiceAtOnceSucceedsOnce", func(t *testing.T, s enrolStore, _ *testClock) {
		ctx := context.Background()
		reps := []Enrolments{s.replica(t, time.Hour), s.replica(t, time.Hour)}
		const tokens = 20
		var toks []JoinToken
		for i := range tokens {
			tok, _, err := reps[i%2].NewJoinToken(ctx, "site-"+string(rune('a'+i)), nil, time.Hour, "admin@x", testFP)
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		var wins [tokens]atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, tok := range toks {
			for _, r := range reps {
				wg.Go(func() {
					<-start
					_, err := r.Redeem(ctx, tok)
					switch {
					case err == nil:
						wins[i].Add(1)
					case modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED:
						t.Errorf("redeem: %v", err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for i := range wins {
			if n := wins[i].Load(); n != 1 {
				t.Errorf("token %d redeemed %d times by two replicas at once, want exactly 1", i, n)
			}
		}
	}},
	{"ExpiredTokenRefused", func(t *testing.T, s enrolStore, clk *testClock) {
		ctx := context.Background()
		a, b := s.replica(t, time.Hour), s.replica(t, time.Hour)
		tok, exp, err := a.NewJoinToken(ctx, "site-1", nil, time.Hour, "admin@x", testFP)
		if err != nil {
			t.Fatal(err)
		}
		if d := exp.Sub(clk.Now()); d <= 0 || d > time.Hour {
			t.Fatalf("expires in %v, want within the hour", d)
		}
		clk.Advance(time.Hour + time.Minute)
		if _, err := b.Redeem(ctx, tok); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED || !strings.Contains(err.Error(), "expired") {
			t.Errorf("an expired token: %v", err)
		}
		// Spent by the refusal, as a valid one would be.
		if _, err := a.Redeem(ctx, tok); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
			t.Errorf("an expired token, again: %v", err)
		}
	}},
	{"RevocationSeenByEveryReplica", func(t *testing.T, s enrolStore, _ *testClock) {
		ctx := context.Background()
		const poll = 20 * time.Millisecond
		a, b := s.replica(t, poll), s.replica(t, poll)
		for _, c := range [][2]string{{"site-1", "0a"}, {"site-1", "0b"}, {"site-2", "0c"}} {
			if err := b.Issued(ctx, c[0], c[1], ""); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := a.Sites(ctx); err != nil || !slices.Equal(got, []string{"site-1", "site-2"}) {
			t.Fatalf("sites %v, %v", got, err)
		}
		pending, _, err := b.NewJoinToken(ctx, "site-1", nil, time.Hour, "admin@x", testFP)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := a.Revoke(ctx, "site-1"); n != 2 || err != nil {
			t.Fatalf("revoke: %d, %v", n, err)
		}
		// The replica that revoked refuses at once.
		if !a.IsRevoked("0a") || !a.IsRevoked("0b") || a.IsRevoked("0c") {
			t.Errorf("at the revoking replica: 0a %v 0b %v 0c %v", a.IsRevoked("0a"), a.IsRevoked("0b"), a.IsRevoked("0c"))
		}
		// The other within its poll (a generous bound, not a timing).
		deadline := time.Now().Add(30 * time.Second)
		for !(b.IsRevoked("0a") && b.IsRevoked("0b")) && time.Now().Before(deadline) {
			time.Sleep(poll)
		}
		if !b.IsRevoked("0a") || !b.IsRevoked("0b") || b.IsRevoked("0c") {
			t.Errorf("at the other replica: 0a %v 0b %v 0c %v", b.IsRevoked("0a"), b.IsRevoked("0b"), b.IsRevoked("0c"))
		}
		if _, err := b.Redeem(ctx, pending); err == nil {
			t.Error("a revoked site's pending join token still enrols it")
		}
		if got, err := b.Sites(ctx); err != nil || !slices.Equal(got, []string{"site-2"}) {
			t.Errorf("sites after the revocation: %v, %v", got, err)
		}
		if n, err := b.Revoke(ctx, "site-1"); n != 0 || err != nil {
			t.Errorf("revoking again: %d, %v", n, err)
		}
		// Enrolled again: a new certificate, not revoked.
		if err := b.Issued(ctx, "site-1", "0d", ""); err != nil || a.IsRevoked("0d") || b.IsRevoked("0d") {
			t.Errorf("re-enrolled: %v", err)
		}
		s.closeAll(t)
		c := s.replica(t, time.Hour)
		if !c.IsRevoked("0a") || !c.IsRevoked("0b") || c.IsRevoked("0c") || c.IsRevoked("0d") {
			t.Errorf("after a restart: 0a %v 0b %v 0c %v 0d %v", c.IsRevoked("0a"), c.IsRevoked("0b"), c.IsRevoked("0c"), c.IsRevoked("0d"))
		}
	}},
	{"RevokedCertificateNotRenewedAtAReplicaYetToPoll", func(t *testing.T, s enrolStore, _ *testClock) {
		ctx := context.Background()
		a, b := s.replica(t, time.Hour), s.replica(t, time.Hour) // b does not poll in this test
		if err := a.Issued(ctx, "site-1", "0a", ""); err != nil {
			t.Fatal(err)
		}
		if err := a.Issued(ctx, "site-2", "0b", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Revoke(ctx, "site-1"); err != nil {
			t.Fatal(err)
		}
		if err := b.Issued(ctx, "site-1", "1a", "0a"); modelfleet.ErrorCode(err) != modelfleet.EUNAUTHORIZED {
			t.Errorf("renewing a revoked certificate: %v", err)
		}
		if got, _ := a.Sites(ctx); !slices.Equal(got, []string{"site-2"}) {
			t.Errorf("the refused renewal was recorded: sites %v", got)
		}
		if err := b.Issued(ctx, "site-2", "1b", "0b"); err != nil {
			t.Errorf("renewing a good certificate: %v", err)
		}
		if n, err := a.Revoke(ctx, "site-2"); n != 2 || err != nil {
			t.Errorf("revoking the renewed site: %d, %v (want its 2 certificates)", n, err)
		}
	}},
	{"KeepsTheNewestCertificates", func(t *testing.T, s enrolStore, _ *testClock) {
		ctx := context.Background()
		a := s.replica(t, time.Hour)
		for i := range keepSerials + 4 {
			if err := a.Issued(ctx, "site-1", string(rune('a'+i)), ""); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := a.Revoke(ctx, "site-1"); n != keepSerials || err != nil {
			t.Fatalf("revoked %d, %v: want the newest %d", n, err, keepSerials)
		}
		if a.IsRevoked("a") || !a.IsRevoked(string(rune('a'+keepSerials+3))) {
			t.Error("revoked the oldest rather than the newest certificates")
		}
	}},
}

// A gateway moved onto PostgreSQL imports its file store once: tokens,
// certificates and revocations carry over, and the file is not read again.
func TestPostgresEnrolmentsImportFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "enrolments.json")
	f, err := OpenEnrolments(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := f.NewJoinToken(ctx, "site-9", map[string]string{"plant": "b"}, time.Hour, "admin@x", testFP)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"site-1", "0a"}, {"site-2", "0b"}} {
		if err := f.Issued(ctx, c[0], c[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Revoke(ctx, "site-1"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dsn := pgtest.DSN(t)
	open := func() *PostgresEnrolments {
		pool, err := pgdb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		e, err := OpenPostgresEnrolments(ctx, pool, PostgresEnrolmentsOptions{ImportFile: path})
		if err != nil {
			pool.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(); pool.Close() })
		return e
	}
	a := open()
	if !a.IsRevoked("0a") || a.IsRevoked("0b") {
		t.Errorf("imported revocations: 0a %v, 0b %v", a.IsRevoked("0a"), a.IsRevoked("0b"))
	}
	if got, _ := a.Sites(ctx); !slices.Equal(got, []string{"site-2"}) {
		t.Errorf("imported sites %v", got)
	}
	if labels, err := a.Redeem(ctx, tok); err != nil || labels["plant"] != "b" {
		t.Errorf("an imported token: %v, %v", labels, err)
	}
	// A second replica (or a restart) with the file still there does not
	// bring the spent token back.
	b := open()
	if _, err := b.Redeem(ctx, tok); err == nil {
		t.Error("the file was imported again: a spent token came back")
	}
	if !b.IsRevoked("0a") {
		t.Error("the imported revocation at another replica")
	}
}
