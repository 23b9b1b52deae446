package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/modelfleet/modelfleet"
)

// PostgresStore keeps the directory in PostgreSQL (the schema is
// internal/pgdb's), shared by any number of gateway replicas: a step locks
// its sites' rows (SELECT ... FOR UPDATE, in site order, so two steps never
// deadlock), and a write of desired state notifies every replica's long
// polls through LISTEN/NOTIFY.
type PostgresStore struct {
	pool   *pgxpool.Pool
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// seen is each site's revision as the last read of them all found
	// it (Watch); nil until the listener's first read.
	seenMu sync.Mutex
	seen   map[string]int64
}

var _ Store = (*PostgresStore)(nil)

// notifyChannel is the channel desired-state writes are announced on; a
// payload is lines of a site ID, a space and its new revision (IDs hold
// neither). A line of an ID alone (what replicas before revisions were
// announced send) wakes the site all the same.
const notifyChannel = "modelfleet_desired"

// maxNotifyPayload stays under PostgreSQL's 8000-byte payload limit.
const maxNotifyPayload = 7000

// PostgresPoll is how often each replica looks, in one read of every
// site's revision, for desired-state writes whose notification it did not
// get, and wakes those sites' long polls (default 5 s).
var PostgresPoll = 5 * time.Second

// NewPostgresStore keeps the directory in the database pool reaches (already
// migrated: pgdb.Open). The pool stays the caller's: Close does not close it.
func NewPostgresStore(pool *pgxpool.Pool) *PostgresStore {
	return &PostgresStore{pool: pool}
}

// OpenPostgres opens a directory on PostgreSQL, mirroring artifacts in
// artifactsDir (a volume the replicas share).
func OpenPostgres(pool *pgxpool.Pool, artifactsDir string) (*Directory, error) {
	return New(NewPostgresStore(pool), artifactsDir)
}

// Close stops listening; the pool stays open.
func (p *PostgresStore) Close() error {
	p.once.Do(func() {
		if p.cancel != nil {
			p.cancel()
			<-p.done
		}
	})
	return nil
}

// Ping checks the database answers.
func (p *PostgresStore) Ping(ctx context.Context) error { return p.pool.Ping(ctx) }

// Watch listens for other replicas' desired-state writes on one dedicated
// connection, reconnecting (and waking every long poll, which re-reads) when
// it is lost. In case a notification is lost all the same, it reads every
// site's revision each PostgresPoll and wakes the sites whose revision
// changed since the last read: one query per replica, where a re-read by
// each waiting long poll would be one per site (10,000 sites: 2,000 a
// second). So long polls never re-read by themselves (poll 0).
func (p *PostgresStore) Watch(wake func(site string)) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := p.listen(ctx, wake)
			if ctx.Err() != nil {
				return
			}
			_ = err // lost the connection: anything may have changed meanwhile
			wake("")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	every := PostgresPoll // read here: a test may set it back while the sweep runs
	go func() {
		defer wg.Done()
		p.sweep(ctx, wake, every)
	}()
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return 0
}

// sweep reads every site's revision each period and wakes the sites
// whose revision is above the one the last read found or a notification
// announced (or that neither knew). It compares with nothing until the
// listener has read where it starts from (setSeen).
func (p *PostgresStore) sweep(ctx context.Context, wake func(string), period time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		rctx, cancel := context.WithTimeout(ctx, period+10*time.Second)
		_ = p.sweepOnce(rctx, wake) // the next read compares with the last one that worked
		cancel()
	}
}

// sweepOnce is one read of the sweep.
func (p *PostgresStore) sweepOnce(ctx context.Context, wake func(string)) error {
	revs, err := revisions(ctx, p.pool)
	if err != nil {
		return err
	}
	p.seenMu.Lock()
	defer p.seenMu.Unlock()
	if p.seen == nil {
		return nil
	}
	for site, rev := range revs {
		old, ok := p.seen[site]
		switch {
		case !ok || old < rev:
			wake(site)
		case old > rev:
			// A notification of a write after this read: keep it.
			revs[site] = old
		}
	}
	p.seen = revs
	return nil
}

// notified records that a notification announced rev of site, before its
// wake-up: the sweep then does not wake the site again for it (its long
// poll has long answered, and the agent's next one would read the whole
// state for nothing).
func (p *PostgresStore) notified(site string, rev int64) {
	p.seenMu.Lock()
	defer p.seenMu.Unlock()
	if p.seen != nil && p.seen[site] < rev {
		p.seen[site] = rev
	}
}

// setSeen sets what the sweep compares with next: a read the listener
// made after it started listening and before it woke every long poll, so
// that a write the read missed is woken by that wake-up, and one after
// the read by its notification or else the next sweep.
func (p *PostgresStore) setSeen(revs map[string]int64) {
	p.seenMu.Lock()
	defer p.seenMu.Unlock()
	p.seen = revs
}

// revisions reads every site's revision.
func revisions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT site, revision FROM fleet_desired`)
	if err != nil {
		return nil, err
	}
	revs := map[string]int64{}
	var site string
	var rev int64
	_, err = pgx.ForEachRow(rows, []any{&site, &rev}, func() error {
		revs[site] = rev
		return nil
	})
	return revs, err
}

func (p *PostgresStore) listen(ctx context.Context, wake func(string)) error {
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection carries LISTEN state: never hand it back to the pool.
	defer func() {
		c.Conn().Close(context.Background())
		c.Release()
	}()
	if _, err := c.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	revs, err := revisions(ctx, c)
	if err != nil {
		return err
	}
	p.setSeen(revs)
	wake("") // writes between the last connection and this LISTEN
	for {
		n, err := c.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(n.Payload, "\n") {
			site, r, ok := strings.Cut(line, " ")
			if rev, err := strconv.ParseInt(r, 10, 64); ok && err == nil {
				p.notified(site, rev)
			}
			wake(site)
		}
	}
}

func (p *PostgresStore) PutSite(ctx context.Context, s *modelfleet.Site) error {
	buf, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var labels []byte
	if err := p.pool.QueryRow(ctx, `WITH `+pgUpsertSite+` SELECT labels FROM s`, s.ID, buf, len(s.Labels) == 0).Scan(&labels); err != nil {
		return err
	}
	s.Labels = nil
	if labels != nil {
		return json.Unmarshal(labels, &s.Labels)
	}
	return nil
}

// pgUpsertSite is the common table expressions of one statement (atomic
// on its own, one round trip) that upsert a site ($1, its record $2),
// keeping the stored labels when $3 (the record has none), and create its
// desired-state row (which steps lock); s is the stored site's id and
// labels.
const pgUpsertSite = `s AS (
		INSERT INTO fleet_sites (id, doc) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET doc = CASE
			WHEN $3 AND fleet_sites.doc ? 'labels' THEN jsonb_set(EXCLUDED.doc, '{labels}', fleet_sites.doc->'labels')
			ELSE EXCLUDED.doc END
		RETURNING id, doc->'labels' AS labels),
	sd AS (INSERT INTO fleet_desired (site) SELECT id FROM s ON CONFLICT DO NOTHING)`

func (p *PostgresStore) Site(ctx context.Context, id string) (modelfleet.Site, error) {
	var s modelfleet.Site
	var buf []byte
	err := p.pool.QueryRow(ctx, `SELECT doc FROM fleet_sites WHERE id = $1`, id).Scan(&buf)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", id)
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(buf, &s)
}

func (p *PostgresStore) Sites(ctx context.Context) ([]modelfleet.Site, error) {
	rows, err := p.pool.Query(ctx, `SELECT doc FROM fleet_sites ORDER BY id`)
	if err != nil {
		return nil, err
	}
	sites := []modelfleet.Site{}
	for _, buf := range collectBytes(rows, &err) {
		var s modelfleet.Site
		if err := json.Unmarshal(buf, &s); err != nil {
			return nil, err
		}
		sites = append(sites, s)
	}
	return sites, err
}

func collectBytes(rows pgx.Rows, err *error) [][]byte {
	out, e := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	*err = e
	return out
}

func (p *PostgresStore) UpdateDesired(ctx context.Context, sites []string, f UpdateFunc) (modelfleet.StepResult, []string, error) {
	var res modelfleet.StepResult
	var changed []string
	var revs []int64 // changed's new revisions, for the notifications
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		res, changed, revs = modelfleet.StepResult{}, changed[:0], revs[:0]
		rows, err := tx.Query(ctx, `SELECT site, doc FROM fleet_desired WHERE site = ANY($1) ORDER BY site FOR UPDATE`, sites)
		if err != nil {
			return err
		}
		docs := map[string][]byte{}
		var site string
		var doc []byte
		_, err = pgx.ForEachRow(rows, []any{&site, &doc}, func() error {
			docs[site] = doc
			return nil
		})
		if err != nil {
			return err
		}
		var ids []string
		var bufs [][]byte
		seen := map[string]bool{}
		for _, site := range sites {
			buf, ok := docs[site]
			if !ok {
				return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
			}
			ds := emptyDesired(site)
			if buf != nil {
				if err := json.Unmarshal(buf, &ds); err != nil {
					return fmt.Errorf("decode desired state of %q: %w", site, err)
				}
				if ds.Models == nil {
					ds.Models = map[string]modelfleet.DesiredModel{}
				}
			}
			mod, conflict := f(&ds)
			if conflict != nil {
				res.Conflicts = append(res.Conflicts, *conflict)
				continue
			}
			if mod {
				ds.Revision++
				res.Changed++
				changed = append(changed, site)
				revs = append(revs, ds.Revision)
			} else {
				res.Unchanged++
			}
			out, err := json.Marshal(ds)
			if err != nil {
				return err
			}
			// A site listed twice is applied twice, as in bbolt: the
			// second sees the first's result.
			docs[site] = out
			if !seen[site] {
				ids = append(ids, site)
				seen[site] = true
			}
		}
		for i := range ids {
			bufs = append(bufs, docs[ids[i]])
		}
		if _, err := tx.Exec(ctx, `
			UPDATE fleet_desired d SET doc = u.doc, revision = (u.doc->>'revision')::bigint
			FROM unnest($1::text[], $2::jsonb[]) AS u(site, doc) WHERE d.site = u.site`, ids, bufs); err != nil {
			return err
		}
		if len(changed) == 0 {
			return nil
		}
		// One statement for every payload: a step of thousands of sites
		// is one round trip more, not one per payload.
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, notifyChannel, notifyPayloads(changed, revs))
		return err
	})
	return res, changed, err
}

// notifyPayloads packs site IDs and their revisions into NOTIFY payloads
// under the size limit.
func notifyPayloads(sites []string, revs []int64) []string {
	var out []string
	var b strings.Builder
	for i, s := range sites {
		line := s + " " + strconv.FormatInt(revs[i], 10)
		if b.Len() > 0 && b.Len()+1+len(line) > maxNotifyPayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}

func (p *PostgresStore) Desired(ctx context.Context, site string) (modelfleet.Desired, error) {
	var buf []byte
	err := p.pool.QueryRow(ctx, `SELECT doc FROM fleet_desired WHERE site = $1`, site).Scan(&buf)
	if errors.Is(err, pgx.ErrNoRows) {
		return modelfleet.Desired{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
	}
	if err != nil {
		return modelfleet.Desired{}, err
	}
	return decodeDesired(site, buf)
}

// DesiredDoc implements Store: jsonb's text of the document and the revision
// column, answered to an agent's poll as they are.
func (p *PostgresStore) DesiredDoc(ctx context.Context, site string) ([]byte, int64, error) {
	var doc []byte
	var rev int64
	err := p.pool.QueryRow(ctx, `SELECT revision, doc FROM fleet_desired WHERE site = $1`, site).Scan(&rev, &doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
	}
	if err != nil || doc == nil {
		return nil, 0, err
	}
	return doc, rev, nil
}

// Revision reads the revision column, which every write of the document
// sets from it (0 before the first step, as the document then says).
func (p *PostgresStore) Revision(ctx context.Context, site string) (int64, error) {
	var rev int64
	err := p.pool.QueryRow(ctx, `SELECT revision FROM fleet_desired WHERE site = $1`, site).Scan(&rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", site)
	}
	return rev, err
}

func decodeDesired(site string, buf []byte) (modelfleet.Desired, error) {
	ds := emptyDesired(site)
	if buf == nil {
		return ds, nil
	}
	if err := json.Unmarshal(buf, &ds); err != nil {
		return ds, fmt.Errorf("decode desired state of %q: %w", site, err)
	}
	if ds.Models == nil {
		ds.Models = map[string]modelfleet.DesiredModel{}
	}
	return ds, nil
}

// ReportActual is one statement (one round trip, atomic): a site's
// heartbeat is the most frequent write there is.
func (p *PostgresStore) ReportActual(ctx context.Context, rec *modelfleet.Site, a modelfleet.Actual) error {
	buf, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var n int64
	if rec != nil {
		if rec.ID != a.Site {
			return modelfleet.Errorf(modelfleet.EINVALID, "site record %q does not match the report's site %q", rec.ID, a.Site)
		}
		sbuf, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		err = p.pool.QueryRow(ctx, `WITH `+pgUpsertSite+`,
			a AS (INSERT INTO fleet_actual (site, doc, revision) SELECT id, $4, $5 FROM s
				ON CONFLICT (site) DO UPDATE SET doc = EXCLUDED.doc, revision = EXCLUDED.revision RETURNING 1)
			SELECT count(*) FROM a`, rec.ID, sbuf, len(rec.Labels) == 0, buf, a.Revision).Scan(&n)
		if err != nil {
			return err
		}
	} else {
		tag, err := p.pool.Exec(ctx, `
			INSERT INTO fleet_actual (site, doc, revision) SELECT id, $2, $3 FROM fleet_sites WHERE id = $1
			ON CONFLICT (site) DO UPDATE SET doc = EXCLUDED.doc, revision = EXCLUDED.revision`, a.Site, buf, a.Revision)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
	}
	if n == 0 {
		return modelfleet.Errorf(modelfleet.ENOTFOUND, "site %q not found", a.Site)
	}
	return nil
}

func (p *PostgresStore) States(ctx context.Context, sites []string) ([]SiteState, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT u.site, d.doc, a.doc
		FROM unnest($1::text[]) WITH ORDINALITY AS u(site, i)
		LEFT JOIN fleet_desired d ON d.site = u.site
		LEFT JOIN fleet_actual a ON a.site = u.site
		ORDER BY u.i`, sites)
	if err != nil {
		return nil, err
	}
	out := make([]SiteState, 0, len(sites))
	var site string
	var dbuf, abuf []byte
	_, err = pgx.ForEachRow(rows, []any{&site, &dbuf, &abuf}, func() error {
		ds, err := decodeDesired(site, dbuf)
		if err != nil {
			return err
		}
		var a modelfleet.Actual
		if abuf != nil {
			if err := json.Unmarshal(abuf, &a); err != nil {
				return fmt.Errorf("decode actual state of %q: %w", site, err)
			}
		}
		out = append(out, SiteState{Desired: ds, Actual: a})
		return nil
	})
	return out, err
}

// Progress has the database compare the revisions (columns: a report's
// document is not even read while it is behind) and send, for the sites
// not behind, only the parts Progress reads.
func (p *PostgresStore) Progress(ctx context.Context, sites []string, model string) ([]SiteProgress, error) {
	rows, err := p.pool.Query(ctx, `
		SELECT u.site, r.desired, r.applied,
			CASE WHEN r.applied >= r.desired THEN d.doc->'workloads' END,
			CASE WHEN r.applied >= r.desired THEN a.doc->'models'->$2 END,
			CASE WHEN r.applied >= r.desired THEN a.doc->'workloads' END
		FROM unnest($1::text[]) WITH ORDINALITY AS u(site, i)
		LEFT JOIN fleet_desired d ON d.site = u.site
		LEFT JOIN fleet_actual a ON a.site = u.site
		CROSS JOIN LATERAL (SELECT coalesce(d.revision, 0) AS desired,
			coalesce(a.revision, 0) AS applied) r
		ORDER BY u.i`, sites, model)
	if err != nil {
		return nil, err
	}
	out := make([]SiteProgress, 0, len(sites))
	var site string
	var sp SiteProgress
	var workloads, am, running []byte
	_, err = pgx.ForEachRow(rows, []any{&site, &sp.Desired, &sp.Applied, &workloads, &am, &running}, func() error {
		q := SiteProgress{Desired: sp.Desired, Applied: sp.Applied}
		for _, part := range []struct {
			doc []byte
			v   any
			of  string
		}{{workloads, &q.Workloads, "desired"}, {am, &q.Model, "actual"}, {running, &q.Running, "actual"}} {
			if part.doc == nil {
				continue
			}
			if err := json.Unmarshal(part.doc, part.v); err != nil {
				return fmt.Errorf("decode %s state of %q: %w", part.of, site, err)
			}
		}
		out = append(out, q)
		return nil
	})
	return out, err
}

func (p *PostgresStore) PutPolicy(ctx context.Context, model string, doc []byte) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO fleet_policies (model, doc) VALUES ($1, $2)
		ON CONFLICT (model) DO UPDATE SET doc = EXCLUDED.doc`, model, doc)
	return err
}

func (p *PostgresStore) Policy(ctx context.Context, model string) ([]byte, error) {
	return p.bytes(ctx, `SELECT doc FROM fleet_policies WHERE model = $1`, model)
}

func (p *PostgresStore) bytes(ctx context.Context, sql string, args ...any) ([]byte, error) {
	var buf []byte
	err := p.pool.QueryRow(ctx, sql, args...).Scan(&buf)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if buf == nil && err == nil {
		buf = []byte{}
	}
	return buf, err
}

func (p *PostgresStore) PutBaseline(ctx context.Context, model, version string, doc []byte) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO fleet_baselines (model, version, doc) VALUES ($1, $2, $3)
		ON CONFLICT (model, version) DO UPDATE SET doc = EXCLUDED.doc`, model, version, doc)
	return err
}

func (p *PostgresStore) Baseline(ctx context.Context, model, version string) ([]byte, error) {
	return p.bytes(ctx, `SELECT doc FROM fleet_baselines WHERE model = $1 AND version = $2`, model, version)
}

// PutStatements implements Store.
func (p *PostgresStore) PutStatements(ctx context.Context, docs map[string][]byte) error {
	refs, bufs := make([]string, 0, len(docs)), make([][]byte, 0, len(docs))
	for ref, doc := range docs {
		refs, bufs = append(refs, ref), append(bufs, doc)
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO fleet_statements (ref, doc) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT DO NOTHING`, refs, bufs)
	return err
}

// Statements implements Store.
func (p *PostgresStore) Statements(ctx context.Context, refs []string) (map[string][]byte, error) {
	rows, err := p.pool.Query(ctx, `SELECT ref, doc FROM fleet_statements WHERE ref = ANY($1::text[])`, refs)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(refs))
	var ref string
	var doc []byte
	_, err = pgx.ForEachRow(rows, []any{&ref, &doc}, func() error {
		out[ref] = bytes.Clone(doc)
		return nil
	})
	return out, err
}

func (p *PostgresStore) PutWorkload(ctx context.Context, rec modelfleet.WorkloadRecord) (modelfleet.WorkloadRecord, bool, error) {
	buf, err := json.Marshal(rec)
	if err != nil {
		return rec, false, err
	}
	// Insert, or read what a concurrent registration stored first.
	tag, err := p.pool.Exec(ctx, `INSERT INTO fleet_workloads (name, version, rec) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, rec.Name, rec.Version, buf)
	if err != nil {
		return rec, false, err
	}
	if tag.RowsAffected() == 1 {
		return rec, true, nil
	}
	old, ok, err := p.Workload(ctx, rec.Name, rec.Version)
	if err == nil && !ok {
		err = fmt.Errorf("workload %s:%s vanished while registering", rec.Name, rec.Version)
	}
	return old, false, err
}

func (p *PostgresStore) Workload(ctx context.Context, name, version string) (modelfleet.WorkloadRecord, bool, error) {
	var rec modelfleet.WorkloadRecord
	buf, err := p.bytes(ctx, `SELECT rec FROM fleet_workloads WHERE name = $1 AND version = $2`, name, version)
	if err != nil || buf == nil {
		return rec, false, err
	}
	return rec, true, json.Unmarshal(buf, &rec)
}

func (p *PostgresStore) Workloads(ctx context.Context) ([]modelfleet.WorkloadRecord, error) {
	rows, err := p.pool.Query(ctx, `SELECT rec FROM fleet_workloads ORDER BY name || '/' || version`)
	if err != nil {
		return nil, err
	}
	out := []modelfleet.WorkloadRecord{}
	for _, buf := range collectBytes(rows, &err) {
		var rec modelfleet.WorkloadRecord
		if err := json.Unmarshal(buf, &rec); err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, err
}
