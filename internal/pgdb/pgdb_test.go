package pgdb_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/modelfleet/modelfleet/internal/pgdb"
	"github.com/modelfleet/modelfleet/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// passwordCredential stands in for Entra ID: its "access tokens" are the
// password the test set on the role, valid for an hour of the test's
// clock, as Azure Database for PostgreSQL takes an Entra principal's
// token as its password.
type passwordCredential struct {
	mu       sync.Mutex
	password string
	now      func() time.Time
	scopes   [][]string
}

func (c *passwordCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = append(c.scopes, o.Scopes)
	return azcore.AccessToken{Token: c.password, ExpiresOn: c.now().Add(time.Hour)}, nil
}

func (c *passwordCredential) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.scopes)
}

// TestEntraToken opens a pool whose connections authenticate with the
// credential's token as password (the server checks it: SCRAM for this
// role), and checks that new connections reuse the token until it nears
// expiry, then get a new one, which the server takes where the old one
// is refused by now.
func TestEntraToken(t *testing.T) {
	srv := pgtest.NeedServer(t)
	dsn := srv.PasswordRole(t, "entra_app", "token-1")
	var mu sync.Mutex
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cred := &passwordCredential{password: "token-1", now: clock}
	ctx := context.Background()

	// The server refuses the role without its password: the test's
	// premise (trust for every other role) does not reach it.
	if _, err := pgdb.Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("no password: %v; want a password authentication failure", err)
	}
	if _, err := pgdb.OpenWith(ctx, strings.Replace(dsn, "entra_app@", "entra_app:secret@", 1), pgdb.Options{Credential: cred}); err == nil {
		t.Fatal("a DSN with a password and a credential: no error")
	}

	pool, err := pgdb.OpenWith(ctx, dsn, pgdb.Options{Credential: cred, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	who := func() string {
		t.Helper()
		var user string
		if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
			t.Fatal(err)
		}
		return user
	}
	if u := who(); u != "entra_app" {
		t.Fatalf("connected as %s", u)
	}
	if n := cred.calls(); n != 1 {
		t.Errorf("%d tokens fetched for the first connections, want 1", n)
	}
	if !slices.Equal(cred.scopes[0], []string{pgdb.EntraScope}) {
		t.Errorf("scopes %v", cred.scopes[0])
	}

	// New connections within the token's life reuse it.
	pool.Reset()
	who()
	if n := cred.calls(); n != 1 {
		t.Errorf("%d tokens fetched, want the first reused", n)
	}

	// The token is rotated: the server takes only the new one. Until the
	// cached one nears its expiry, new connections still present it and
	// are refused.
	srv.SetPassword(t, "entra_app", "token-2")
	cred.mu.Lock()
	cred.password = "token-2"
	cred.mu.Unlock()
	pool.Reset()
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("a new connection with the old token was let in: the server does not check the password")
	}
	mu.Lock()
	now = now.Add(56 * time.Minute) // within 5 min of the first token's expiry
	mu.Unlock()
	pool.Reset()
	if u := who(); u != "entra_app" {
		t.Fatalf("connected as %s", u)
	}
	if n := cred.calls(); n != 2 {
		t.Errorf("%d tokens fetched, want a second once the first neared expiry", n)
	}
}

// TestPoolSize checks that a pool is DefaultMaxConns large unless the DSN
// says otherwise (pool_max_conns): the listeners hold two connections for
// good, and pgx's own default would leave a replica one or two for
// everything else.
func TestPoolSize(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	for _, c := range []struct {
		dsn  string
		want int32
	}{{dsn, pgdb.DefaultMaxConns()}, {dsn + sep + "pool_max_conns=3", 3}} {
		pool, err := pgdb.Open(ctx, c.dsn)
		if err != nil {
			t.Fatal(err)
		}
		got := pool.Config().MaxConns
		pool.Close()
		if got != c.want {
			t.Errorf("%s: MaxConns %d, want %d", c.dsn, got, c.want)
		}
	}
	if pgdb.DefaultMaxConns() < 10 {
		t.Errorf("DefaultMaxConns %d, want at least 10", pgdb.DefaultMaxConns())
	}
}
