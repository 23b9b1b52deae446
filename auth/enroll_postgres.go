package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultRevocationPoll is how often a PostgresEnrolments re-reads the
// revocations other replicas made: the longest a revoked certificate is
// still accepted by a replica other than the one that revoked it (plus
// one query).
const DefaultRevocationPoll = 2 * time.Second

// enrolGCEvery is how often a replica drops expired join tokens and
// revocations older than any certificate.
const enrolGCEvery = 10 * time.Minute

// enrolLockSpace is the first key of the transaction advisory locks that
// serialise one site's Issued and Revoke (the second is the site's
// hash); two-key locks do not share the space of pgdb's migration lock.
const enrolLockSpace = 0x656e726f // "enro"

// PostgresEnrolmentsOptions tunes OpenPostgresEnrolments.
type PostgresEnrolmentsOptions struct {
	// Poll is how often revocations are re-read (default
	// DefaultRevocationPoll).
	Poll time.Duration
	// ImportFile is a file store's path (FileEnrolments'
	// <pki>/enrolments.json): if it exists and the database has not
	// imported one yet, its tokens, certificates and revocations are
	// copied in, once, so that moving a gateway onto PostgreSQL loses no
	// revocation. The file is only read.
	ImportFile string
	Logger     *slog.Logger
	now        func() time.Time // tests: a clock other than time.Now
}

// PostgresEnrolments keeps the enrolments in PostgreSQL (internal/pgdb's
// schema, tables enrol_*), shared by any number of gateway replicas: a
// join token made at one is redeemed at any other, once (a conditional
// UPDATE ... RETURNING), and a revocation made at one is refused by the
// others within Poll. IsRevoked answers from memory: the revoked serials,
// re-read whenever the revision enrol_meta counts moves.
type PostgresEnrolments struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	poll time.Duration
	now  func() time.Time

	mu       sync.Mutex // one load at a time, and a revocation's own merge
	revision int64
	revoked  atomic.Pointer[map[string]struct{}]

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

var _ Enrolments = (*PostgresEnrolments)(nil)

// OpenPostgresEnrolments opens the enrolments in the database pool reaches
// (already migrated: pgdb.Open), imports opts.ImportFile if due, reads the
// revocations and starts re-reading them every opts.Poll until Close. The
// pool stays the caller's.
func OpenPostgresEnrolments(ctx context.Context, pool *pgxpool.Pool, opts PostgresEnrolmentsOptions) (*PostgresEnrolments, error) {
	p := &PostgresEnrolments{pool: pool, log: opts.Logger, poll: opts.Poll, now: opts.now, revision: -1}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.poll <= 0 {
		p.poll = DefaultRevocationPoll
	}
	p.revoked.Store(&map[string]struct{}{})
	if opts.ImportFile != "" {
		if err := p.importFile(ctx, opts.ImportFile); err != nil {
			return nil, err
		}
	}
	p.gc(ctx)
	if err := p.refresh(ctx); err != nil {
		return nil, fmt.Errorf("enrolments: %w", err)
	}
	loop, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go p.run(loop)
	return p, nil
}

// Close stops re-reading revocations; the pool stays open.
func (p *PostgresEnrolments) Close() error {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
	return nil
}

// run re-reads the revocations every poll, and collects garbage now and
// then. A database that does not answer keeps the revocations last read
// (and the gateway's /readyz fails meanwhile).
func (p *PostgresEnrolments) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(p.poll)
	defer t.Stop()
	lastGC, failing := time.Now(), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, max(p.poll, 5*time.Second))
		err := p.refresh(qctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			p.log.Warn("enrolments: cannot re-read revocations; the last read stay in force", "error", err)
			failing = true
		case err == nil && failing:
			p.log.Info("enrolments: revocations re-read again")
			failing = false
		}
		if time.Since(lastGC) >= enrolGCEvery {
			p.gc(ctx)
			lastGC = time.Now()
		}
	}
}

// refresh reloads the revoked serials if the revision moved since the
// last load. The revision is read before the serials, so the serials are
// at least as new as the revision kept: a revocation committed between
// the two reads is loaded now and again at the next poll.
func (p *PostgresEnrolments) refresh(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rev int64
	if err := p.pool.QueryRow(ctx, `SELECT revision FROM enrol_meta`).Scan(&rev); err != nil {
		return err
	}
	if rev == p.revision {
		return nil
	}
	rows, err := p.pool.Query(ctx, `SELECT serial FROM enrol_revoked WHERE at > $1`, p.now().Add(-2*DefaultSiteCertLifetime))
	if err != nil {
		return err
	}
	set := map[string]struct{}{}
	var serial string
	if _, err := pgx.ForEachRow(rows, []any{&serial}, func() error {
		set[serial] = struct{}{}
		return nil
	}); err != nil {
		return err
	}
	p.revoked.Store(&set)
	p.revision = rev
	return nil
}

// gc drops expired join tokens (redeemed or not: neither can enrol
// anything) and revocations older than any certificate, as the file
// store does. Every replica may run it; it is idempotent.
func (p *PostgresEnrolments) gc(ctx context.Context) {
	now := p.now()
	if _, err := p.pool.Exec(ctx, `DELETE FROM enrol_tokens WHERE expires < $1`, now); err != nil && ctx.Err() == nil {
		p.log.Warn("enrolments: dropping expired join tokens", "error", err)
	}
	if _, err := p.pool.Exec(ctx, `DELETE FROM enrol_revoked WHERE at < $1`, now.Add(-2*DefaultSiteCertLifetime)); err != nil && ctx.Err() == nil {
		p.log.Warn("enrolments: dropping old revocations", "error", err)
	}
}

// NewJoinToken creates a one-time token for site, valid for ttl: its hash
// is stored, never the secret.
func (p *PostgresEnrolments) NewJoinToken(ctx context.Context, site string, labels map[string]string, ttl time.Duration, by, caFingerprint string) (JoinToken, time.Time, error) {
	t, h, exp, err := newJoinToken(site, ttl, caFingerprint, p.now())
	if err != nil {
		return JoinToken{}, time.Time{}, err
	}
	if _, err := p.pool.Exec(ctx, `INSERT INTO enrol_tokens (hash, site, labels, expires, made_by) VALUES ($1, $2, $3, $4, $5)`,
		h, site, labels, exp, by); err != nil {
		return JoinToken{}, time.Time{}, fmt.Errorf("enrolments: store the join token: %w", err)
	}
	return t, exp, nil
}

// Redeem spends a join token in one statement: of two replicas redeeming
// it at once, the second finds it spent.
func (p *PostgresEnrolments) Redeem(ctx context.Context, t JoinToken) (map[string]string, error) {
	var (
		labels  map[string]string
		expires time.Time
	)
	err := p.pool.QueryRow(ctx, `UPDATE enrol_tokens SET redeemed_at = $3
		WHERE hash = $1 AND site = $2 AND redeemed_at IS NULL RETURNING labels, expires`,
		hashSecret(t.Secret), t.Site, p.now()).Scan(&labels, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, errTokenUnknown(t.Site)
	case err != nil:
		return nil, fmt.Errorf("enrolments: redeem the join token: %w", err)
	}
	if p.now().After(expires) {
		return nil, errTokenExpired(t.Site, expires)
	}
	return labels, nil
}

// lockSite takes the transaction's lock on site: Issued and Revoke of
// one site run one after the other on every replica.
func lockSite(ctx context.Context, tx pgx.Tx, site string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(enrolLockSpace), site)
	return err
}

// Issued records a certificate issued to site, keeping the newest
// keepSerials; it refuses a renewal of a revoked certificate, checked
// under the site's lock, so a replica that has not yet polled the
// revocation cannot extend it.
func (p *PostgresEnrolments) Issued(ctx context.Context, site, serialHex, renewedFrom string) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := lockSite(ctx, tx, site); err != nil {
			return err
		}
		if renewedFrom != "" {
			var revoked bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM enrol_revoked WHERE serial = $1)`, renewedFrom).Scan(&revoked); err != nil {
				return err
			}
			if revoked {
				return errRenewRevoked(site, renewedFrom)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO enrol_serials (site, serial) VALUES ($1, $2) ON CONFLICT DO NOTHING`, site, serialHex); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM enrol_serials WHERE site = $1 AND seq <=
			(SELECT seq FROM enrol_serials WHERE site = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)`, site, keepSerials)
		return err
	})
	if err != nil {
		return fmt.Errorf("enrolments: record the certificate: %w", err)
	}
	return nil
}

// Revoke moves site's certificates to the revoked, drops its unspent join
// tokens and moves the revision every replica polls; this replica's own
// IsRevoked answers from the next request on.
func (p *PostgresEnrolments) Revoke(ctx context.Context, site string) (int, error) {
	var serials []string
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		serials = nil
		if err := lockSite(ctx, tx, site); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH gone AS (DELETE FROM enrol_serials WHERE site = $1 RETURNING serial)
			INSERT INTO enrol_revoked (serial, site, at) SELECT serial, $1, $2 FROM gone
			ON CONFLICT DO NOTHING RETURNING serial`, site, p.now().UTC())
		if err != nil {
			return err
		}
		if serials, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM enrol_tokens WHERE site = $1 AND redeemed_at IS NULL`, site); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE enrol_meta SET revision = revision + 1`)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enrolments: revoke %s: %w", site, err)
	}
	p.mu.Lock()
	set := maps.Clone(*p.revoked.Load())
	for _, s := range serials {
		set[s] = struct{}{}
	}
	p.revoked.Store(&set)
	p.mu.Unlock()
	return len(serials), nil
}

// IsRevoked reports whether a certificate serial was revoked, as of the
// last poll (or this replica's own revocation).
func (p *PostgresEnrolments) IsRevoked(serialHex string) bool {
	_, ok := (*p.revoked.Load())[serialHex]
	return ok
}

// Sites lists the sites holding certificates the store issued.
func (p *PostgresEnrolments) Sites(ctx context.Context) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT DISTINCT site FROM enrol_serials ORDER BY site`)
	if err != nil {
		return nil, fmt.Errorf("enrolments: sites: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// importFile copies a file store into the database once: under the
// enrol_meta row's lock, so that replicas starting together import it
// once between them.
func (p *PostgresEnrolments) importFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(path + ".log"); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	f, _, err := readEnrolments(path)
	if err != nil {
		return err
	}
	f.gc()
	st := f.st
	var imported bool
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var at *time.Time
		if err := tx.QueryRow(ctx, `SELECT imported_at FROM enrol_meta FOR UPDATE`).Scan(&at); err != nil {
			return err
		}
		if at != nil {
			return nil
		}
		b := &pgx.Batch{}
		for h, t := range st.Tokens {
			b.Queue(`INSERT INTO enrol_tokens (hash, site, labels, expires, made_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
				h, t.Site, t.Labels, t.Expires, t.By)
		}
		for _, site := range slices.Sorted(maps.Keys(st.Serials)) {
			for _, s := range st.Serials[site] { // oldest first: seq follows
				b.Queue(`INSERT INTO enrol_serials (site, serial) VALUES ($1, $2) ON CONFLICT DO NOTHING`, site, s)
			}
		}
		for s, at := range st.Revoked {
			b.Queue(`INSERT INTO enrol_revoked (serial, site, at) VALUES ($1, '', $2) ON CONFLICT DO NOTHING`, s, at)
		}
		b.Queue(`UPDATE enrol_meta SET imported_at = $1, revision = revision + 1`, p.now().UTC())
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		imported = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("enrolments: import %s: %w", path, err)
	}
	if imported {
		p.log.Info("enrolments: imported the file store into PostgreSQL (it is not read again)", "file", path,
			"tokens", len(st.Tokens), "sites", len(st.Serials), "revoked", len(st.Revoked))
	}
	return nil
}
