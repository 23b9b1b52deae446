package fleet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/modelfleet/modelfleet/drift"
)

// The drift monitor's series (drift.StateStore) live beside the fleet
// they watch, so that a monitor that restarts, or another gateway
// replica's, continues the same windows.

// MonitorState is where the drift monitor keeps its series
// (drift.Options.State).
func (d *Directory) MonitorState() drift.StateStore { return d.store }

var monitorBucket = []byte("monitor")

// seriesPrefix is a series' keys' prefix in the monitor bucket: its names
// NUL-separated (names never hold one); the head's key ends in 'h', a
// part's in 'p' and the part's number (big-endian, offset so that
// negative parts sort first).
func seriesPrefix(k drift.SeriesKey) []byte {
	return []byte(k.Site + "\x00" + k.Model + "\x00" + k.Version + "\x00")
}

func partKey(prefix []byte, part int) []byte {
	return binary.BigEndian.AppendUint32(append(slices.Clip(prefix), 'p'), uint32(int64(part)+1<<31))
}

func (b *boltStore) LoadSeries(_ context.Context, k drift.SeriesKey) (drift.SeriesState, error) {
	var st drift.SeriesState
	prefix := seriesPrefix(k)
	err := b.monitor.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(monitorBucket)
		if bk == nil {
			return nil
		}
		head := bk.Get(append(slices.Clip(prefix), 'h'))
		if head == nil {
			return nil
		}
		if len(head) < 8 {
			return errors.New("monitor series head too short")
		}
		st.Gen = int64(binary.BigEndian.Uint64(head))
		st.Head = bytes.Clone(head[8:])
		st.Parts = map[int][]byte{}
		pp := append(slices.Clip(prefix), 'p')
		c := bk.Cursor()
		for key, v := c.Seek(pp); key != nil && bytes.HasPrefix(key, pp); key, v = c.Next() {
			if len(key) != len(pp)+4 {
				continue
			}
			st.Parts[int(int64(binary.BigEndian.Uint32(key[len(pp):]))-1<<31)] = bytes.Clone(v)
		}
		return nil
	})
	return st, err
}

func (b *boltStore) SaveSeries(_ context.Context, writes []drift.SeriesWrite) ([]int, error) {
	var conflicts []int
	err := b.monitor.Update(func(tx *bolt.Tx) error {
		conflicts = conflicts[:0]
		bk, err := tx.CreateBucketIfNotExists(monitorBucket)
		if err != nil {
			return err
		}
		for i, w := range writes {
			prefix := seriesPrefix(w.Key)
			hk := append(slices.Clip(prefix), 'h')
			var gen int64
			if old := bk.Get(hk); len(old) >= 8 {
				gen = int64(binary.BigEndian.Uint64(old))
			}
			if gen != w.Prev {
				conflicts = append(conflicts, i)
				continue
			}
			if err := bk.Put(hk, append(binary.BigEndian.AppendUint64(nil, uint64(w.Prev+1)), w.Head...)); err != nil {
				return err
			}
			for part, doc := range w.Parts {
				key := partKey(prefix, part)
				if doc == nil {
					err = bk.Delete(key)
				} else {
					err = bk.Put(key, doc)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: store monitor series: %w", err)
	}
	return conflicts, nil
}

func (p *PostgresStore) LoadSeries(ctx context.Context, k drift.SeriesKey) (drift.SeriesState, error) {
	var st drift.SeriesState
	// One statement, one snapshot: the head and the parts of one
	// generation.
	rows, err := p.pool.Query(ctx, `
		SELECT s.gen, s.head, p.part, p.doc FROM monitor_series s
		LEFT JOIN monitor_parts p USING (site, model, version)
		WHERE s.site = $1 AND s.model = $2 AND s.version = $3`, k.Site, k.Model, k.Version)
	if err != nil {
		return st, err
	}
	var gen int64
	var head, doc []byte
	var part *int32
	_, err = pgx.ForEachRow(rows, []any{&gen, &head, &part, &doc}, func() error {
		if st.Parts == nil {
			st.Gen, st.Head, st.Parts = gen, bytes.Clone(head), map[int][]byte{}
		}
		if part != nil {
			st.Parts[int(*part)] = bytes.Clone(doc)
		}
		return nil
	})
	return st, err
}

func keyLess(a, b drift.SeriesKey) int {
	return strings.Compare(a.Site+"\x00"+a.Model+"\x00"+a.Version, b.Site+"\x00"+b.Model+"\x00"+b.Version)
}

func (p *PostgresStore) SaveSeries(ctx context.Context, writes []drift.SeriesWrite) ([]int, error) {
	// Rows are locked in key order, so two replicas' batches never
	// deadlock.
	order := make([]int, len(writes))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return keyLess(writes[a].Key, writes[b].Key) })
	var sites, models, versions []string
	var prevs []int64
	var heads [][]byte
	for _, i := range order {
		w := &writes[i]
		sites, models, versions = append(sites, w.Key.Site), append(models, w.Key.Model), append(versions, w.Key.Version)
		prevs, heads = append(prevs, w.Prev), append(heads, w.Head)
	}
	var conflicts []int
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		conflicts = conflicts[:0]
		b := &pgx.Batch{}
		b.Queue(`SELECT 1 FROM monitor_series s
			WHERE (s.site, s.model, s.version) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
			ORDER BY s.site, s.model, s.version FOR UPDATE`, sites, models, versions)
		b.Queue(`UPDATE monitor_series s SET gen = s.gen + 1, head = u.head
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS u(site, model, version, prev, head)
			WHERE s.site = u.site AND s.model = u.model AND s.version = u.version AND s.gen = u.prev AND u.prev > 0
			RETURNING s.site, s.model, s.version`, sites, models, versions, prevs, heads)
		b.Queue(`INSERT INTO monitor_series (site, model, version, gen, head)
			SELECT u.site, u.model, u.version, 1, u.head
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[]) AS u(site, model, version, prev, head)
			WHERE u.prev = 0
			ON CONFLICT DO NOTHING RETURNING site, model, version`, sites, models, versions, prevs, heads)
		res := tx.SendBatch(ctx, b)
		if _, err := res.Exec(); err != nil {
			res.Close()
			return err
		}
		written := map[drift.SeriesKey]bool{}
		for range 2 {
			rows, err := res.Query()
			if err != nil {
				res.Close()
				return err
			}
			var k drift.SeriesKey
			if _, err := pgx.ForEachRow(rows, []any{&k.Site, &k.Model, &k.Version}, func() error {
				written[k] = true
				return nil
			}); err != nil {
				res.Close()
				return err
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
		var ps, pm, pv, ds, dm, dv []string
		var pp, dp []int32
		var docs [][]byte
		for _, i := range order {
			w := &writes[i]
			if !written[w.Key] {
				conflicts = append(conflicts, i)
				continue
			}
			for part, doc := range w.Parts {
				if doc == nil {
					ds, dm, dv, dp = append(ds, w.Key.Site), append(dm, w.Key.Model), append(dv, w.Key.Version), append(dp, int32(part))
					continue
				}
				ps, pm, pv, pp = append(ps, w.Key.Site), append(pm, w.Key.Model), append(pv, w.Key.Version), append(pp, int32(part))
				docs = append(docs, doc)
			}
		}
		b = &pgx.Batch{}
		if len(ps) > 0 {
			b.Queue(`INSERT INTO monitor_parts (site, model, version, part, doc)
				SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::bytea[])
				ON CONFLICT (site, model, version, part) DO UPDATE SET doc = EXCLUDED.doc`, ps, pm, pv, pp, docs)
		}
		if len(ds) > 0 {
			b.Queue(`DELETE FROM monitor_parts p USING unnest($1::text[], $2::text[], $3::text[], $4::integer[]) AS u(site, model, version, part)
				WHERE p.site = u.site AND p.model = u.model AND p.version = u.version AND p.part = u.part`, ds, dm, dv, dp)
		}
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: store monitor series: %w", err)
	}
	slices.Sort(conflicts)
	return conflicts, nil
}
