// Package pgdb opens the control plane's PostgreSQL database: a pgx pool,
// and the schema (embedded migrations, goose) brought up to date at
// start-up under an advisory lock, so replicas starting together migrate
// once.
package pgdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// lockID is the advisory lock migrations run under ("modelfleet" in a
// number; any fixed value other applications do not use).
const lockID int64 = 0x6d6f64656c666c74

// Options are how Open connects beyond its DSN.
type Options struct {
	// Credential, if set, authenticates with Microsoft Entra ID (Azure
	// Database for PostgreSQL): every new connection's password is an
	// access token for Scope from it, fetched when the last one is within
	// RefreshBefore of its expiry (tokens last about an hour; a connection
	// checks its password only when it opens, so open connections outlive
	// their token). The DSN then names the Entra principal as its user and
	// holds no password.
	Credential azcore.TokenCredential
	// Scope is the token's scope. Default EntraScope.
	Scope string
	// RefreshBefore is how long before its expiry a token is replaced.
	// Default 5 min.
	RefreshBefore time.Duration
	// Now is the clock tokens expire by. Default time.Now.
	Now func() time.Time
}

// EntraScope is the scope of access tokens for Azure Database for
// PostgreSQL (Entra authentication).
const EntraScope = "https://ossrdbms-aad.database.windows.net/.default"

// DefaultMaxConns is the pool's size when the DSN does not set one
// (pool_max_conns): 4 per CPU, at least 10. pgx's own default (4, or one
// per CPU) is too few for a gateway: the fleet's and the queue's listeners
// each hold one for good, and every long poll, report and step needs one
// for a round trip. Three replicas of 2 CPUs (10 each) stay within the 50
// connections of the smallest Azure Database for PostgreSQL servers; set
// pool_max_conns where the server allows fewer.
func DefaultMaxConns() int32 { return int32(max(10, 4*runtime.NumCPU())) }

// Open connects to dsn (a postgres:// URL or key=value string), checks the
// server answers, and migrates the schema. The pool reconnects by itself
// after the server restarts.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with Options.
func OpenWith(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: never echo it.
		return nil, fmt.Errorf("pgdb: the store DSN is not a valid PostgreSQL connection string")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns()
	}
	if opts.Credential != nil {
		if cfg.ConnConfig.Password != "" {
			return nil, errors.New("pgdb: the store DSN holds a password, and Entra authentication gives its own: remove the password")
		}
		tokens := newTokenCache(opts)
		cfg.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			tok, err := tokens.token(ctx)
			if err != nil {
				return fmt.Errorf("pgdb: Entra token for %s: %w", cc.User, err)
			}
			cc.Password = tok
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgdb: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgdb: connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// tokenCache hands out the credential's token until it nears expiry; one
// caller at a time asks for a new one.
type tokenCache struct {
	opts Options
	mu   sync.Mutex
	tok  azcore.AccessToken
}

func newTokenCache(opts Options) *tokenCache {
	if opts.Scope == "" {
		opts.Scope = EntraScope
	}
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &tokenCache{opts: opts}
}

func (c *tokenCache) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Token != "" && c.opts.Now().Add(c.opts.RefreshBefore).Before(c.tok.ExpiresOn) {
		return c.tok.Token, nil
	}
	tok, err := c.opts.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.opts.Scope}})
	if err != nil {
		return "", err
	}
	c.tok = tok
	return tok.Token, nil
}

// Migrate applies the pending migrations under a session advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("pgdb: migrate: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("pgdb: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("pgdb: migrate: %w", err)
	}
	return nil
}
