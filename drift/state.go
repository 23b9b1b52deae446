package drift

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// StateStore keeps the monitor's series (Options.State): each site, model
// and version's window, the messages it holds, its site reference and the
// verdicts not yet handed to the sink. A monitor that restarts, or one in
// another gateway replica on the same store, continues the same windows.
//
// A series is stored as a head (small: which slots hold which window,
// the window starts seen, the reporting state) and parts (a slot's sums,
// the site reference), so that a message rewrites the head and the one
// slot it changed, not the whole window (whose total is the sum of its
// slots).
// Every write is conditional on the series' generation: of two monitors
// that computed a write from the same generation one wins, and the other
// reloads and applies its message again.
//
// fleet.Directory implements it in bbolt and PostgreSQL; both pass
// fleet/fleettest's conformance suite.
type StateStore interface {
	// LoadSeries returns a series' head, generation and every part (Gen 0
	// and no head when none is stored).
	LoadSeries(ctx context.Context, key SeriesKey) (SeriesState, error)
	// SaveSeries writes each listed series whose stored generation is
	// still its Prev (0: none stored), in one transaction, setting its
	// generation to Prev+1, its head, and the parts listed (a nil part is
	// deleted; parts not listed stay). It returns the indexes in writes of
	// the series it did not write because their generation had moved; an
	// error means nothing was written (or, if the commit's outcome is
	// unknown, everything was).
	SaveSeries(ctx context.Context, writes []SeriesWrite) (conflicts []int, err error)
}

// SeriesKey names a series.
type SeriesKey struct{ Site, Model, Version string }

// SeriesState is a stored series.
type SeriesState struct {
	Gen   int64
	Head  []byte
	Parts map[int][]byte
}

// SeriesWrite is one series' write in StateStore.SaveSeries.
type SeriesWrite struct {
	Key   SeriesKey
	Prev  int64
	Head  []byte
	Parts map[int][]byte
}

// PartSiteRef is the part of a stored series holding its site reference's
// counts (ReferenceSite); its slots are parts 0 to Slots-1.
const PartSiteRef = -1

// headDoc is a stored series' head.
type headDoc struct {
	Baseline string `json:"baseline"`
	SlotMs   int64  `json:"slot_ms"`
	// SlotIDs is the absolute slot number each slot holds (-1: empty); a
	// slot's part is read only when it holds one.
	SlotIDs []int64    `json:"slot_ids"`
	Newest  int64      `json:"newest"`
	Seen    [][2]int64 `json:"seen"` // window start (unix ms), slot number
	// SiteRef says whether part PartSiteRef holds the site reference.
	SiteRef  bool      `json:"site_ref,omitempty"`
	Breached bool      `json:"breached,omitempty"`
	Notified time.Time `json:"notified"`
	Kinds    uint8     `json:"kinds,omitempty"`
	// Unsent are verdicts evaluated but not yet taken by the sink.
	Unsent []Verdict `json:"unsent,omitempty"`
}

// unsentVerdict is a verdict waiting for the sink; seq orders them within
// the series (never reused while the monitor runs).
type unsentVerdict struct {
	seq uint64
	v   Verdict
}

// flushBatch is one write of the series changed since the last one (group
// commit): handlers that changed a series wait for the batch that writes
// it before their message is completed.
type flushBatch struct {
	series []*series
	done   chan struct{}
	err    error
	// epoch is each written series' epoch when it was encoded; a series
	// missing was not written (conflict, or dropped before).
	epoch map[*series]uint64
}

// token is what a handler waits for after changing (or reading) a series:
// the batch that makes its state durable, nil when it is already.
type token struct {
	s     *series
	b     *flushBatch
	epoch uint64
	// counted is the count (Stats) the message went to, taken back if
	// it is applied again.
	counted *atomic.Int64
}

// errStale says a series changed under the handler (another replica wrote
// it, or a write failed): apply the message again on a fresh load.
var errStale = errors.New("drift: series changed elsewhere")

// maxStaleRetries bounds how often one message is applied again after a
// conflict before its queue message is left for redelivery.
const maxStaleRetries = 20

// load reads s from the store if it is not in memory. Called with s.mu
// held and s.layout set to the message's layout.
func (m *Monitor) load(ctx context.Context, s *series, l *layout) error {
	if s.loaded {
		return nil
	}
	st, err := m.opts.State.LoadSeries(ctx, SeriesKey{s.key.site, s.key.model, s.key.version})
	if err != nil {
		return fmt.Errorf("drift: load series %s %s:%s: %w", s.key.site, s.key.model, s.key.version, err)
	}
	m.resetSeries(s, l)
	s.notified = time.Time{}
	s.gen = st.Gen
	s.loaded = true
	s.dirty = map[int]bool{}
	s.unsent = s.unsent[:0]
	if st.Head == nil {
		return nil
	}
	var h headDoc
	if err := json.Unmarshal(st.Head, &h); err != nil {
		m.opts.Logger.Warn("drift: stored series unreadable, starting it over", "site", s.key.site, "model", s.key.model, "version", s.key.version, "err", err)
		m.markAllDirty(s)
		return nil
	}
	// Verdicts never sent are sent whatever became of the window.
	for _, v := range h.Unsent {
		s.unsent = append(s.unsent, unsentVerdict{seq: s.nextSeq, v: v})
		s.nextSeq++
	}
	s.durableSeq = s.nextSeq
	if h.Baseline != l.digest || h.SlotMs != m.slotMs() || len(h.SlotIDs) != m.opts.Slots {
		// Another baseline, or the window is cut otherwise: start over.
		m.markAllDirty(s)
		return nil
	}
	if err := s.decodeParts(l, &h, st.Parts); err != nil {
		m.opts.Logger.Warn("drift: stored series unreadable, starting it over", "site", s.key.site, "model", s.key.model, "version", s.key.version, "err", err)
		m.resetSeries(s, l)
		m.markAllDirty(s)
		return nil
	}
	s.newest = h.Newest
	for _, p := range h.Seen {
		s.seen[p[0]] = p[1]
	}
	s.breached, s.notified, s.kinds = h.Breached, h.Notified, h.Kinds
	if h.SiteRef {
		var err error
		if s.siteCounts, err = decodeInts(st.Parts[PartSiteRef], l.size); err != nil {
			s.siteCounts = nil
		} else {
			s.siteRefs = siteRefsFrom(l, s.siteCounts)
		}
	}
	return nil
}

func (s *series) decodeParts(l *layout, h *headDoc, parts map[int][]byte) error {
	for i, id := range h.SlotIDs {
		if id < 0 {
			continue
		}
		if err := s.slots[i].decode(l, parts[i]); err != nil {
			return fmt.Errorf("slot %d: %w", i, err)
		}
		s.slotID[i] = id
	}
	// The window's total, as apply keeps it: the slots summed in slot
	// order (see series.sums).
	for i, id := range s.slotID {
		if id >= 0 {
			s.sum.add(&s.slots[i], 1)
		}
	}
	return nil
}

// markAllDirty makes the next write replace every part of s.
func (m *Monitor) markAllDirty(s *series) {
	for i := range m.opts.Slots {
		s.dirty[i] = true
	}
	s.dirty[PartSiteRef] = true
}

func (m *Monitor) slotMs() int64 {
	return max(m.opts.Lookback.Milliseconds()/int64(m.opts.Slots), 1)
}

// enqueue adds s to the batch being gathered, unless it is in it already,
// and returns what the caller waits for. Called with s.mu held.
func (m *Monitor) enqueue(s *series) token {
	if s.pending == nil {
		m.pmu.Lock()
		if m.open == nil {
			m.open = &flushBatch{done: make(chan struct{}), epoch: map[*series]uint64{}}
		}
		s.pending = m.open
		m.open.series = append(m.open.series, s)
		start := !m.flushing
		m.flushing = true
		m.pmu.Unlock()
		if start {
			go m.flushLoop()
		}
	}
	return token{s: s, b: s.pending, epoch: s.epoch}
}

// current is what a handler that changed nothing waits for: the write of
// the state it read, if that is not durable yet. Called with s.mu held.
func (s *series) current() token {
	switch {
	case s.pending != nil:
		return token{s: s, b: s.pending, epoch: s.epoch}
	case s.inflight != nil:
		return token{s: s, b: s.inflight, epoch: s.epoch}
	}
	return token{s: s, epoch: s.epoch}
}

// flushLoop writes batches until none is waiting. One runs at a time:
// while it writes, the next batch gathers.
func (m *Monitor) flushLoop() {
	for {
		m.pmu.Lock()
		b := m.open
		m.open = nil
		if b == nil {
			m.flushing = false
			m.pmu.Unlock()
			return
		}
		m.pmu.Unlock()
		m.flush(b)
	}
}

// flushTimeout bounds one batch's write.
const flushTimeout = 30 * time.Second

func (m *Monitor) flush(b *flushBatch) {
	writes := make([]SeriesWrite, 0, len(b.series))
	written := make([]*series, 0, len(b.series))
	seqs := make([]uint64, 0, len(b.series))
	for _, s := range b.series {
		s.mu.Lock()
		s.pending = nil
		if !s.loaded { // dropped after a failed write: its changes are gone
			s.mu.Unlock()
			continue
		}
		writes = append(writes, m.encodeSeries(s))
		written = append(written, s)
		seqs = append(seqs, s.nextSeq)
		b.epoch[s] = s.epoch
		s.gen++
		s.inflight = b
		s.mu.Unlock()
	}
	var conflicts []int
	var err error
	if len(writes) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		began := time.Now()
		conflicts, err = m.opts.State.SaveSeries(ctx, writes)
		cancel()
		if m.opts.OnStateWrite != nil {
			m.opts.OnStateWrite(len(writes), len(conflicts), writeBytes(writes), time.Since(began), err)
		}
	}
	failed := make([]bool, len(written))
	for _, i := range conflicts {
		failed[i] = true
	}
	for i, s := range written {
		s.mu.Lock()
		if s.inflight == b {
			s.inflight = nil
		}
		if (err != nil || failed[i]) && s.epoch == b.epoch[s] {
			// What memory holds is not what the store does: read it again.
			s.loaded = false
			s.epoch++
		}
		if err != nil || failed[i] {
			delete(b.epoch, s)
		} else if s.epoch == b.epoch[s] {
			s.durableSeq = max(s.durableSeq, seqs[i])
		}
		s.mu.Unlock()
	}
	b.err = err
	close(b.done)
}

func writeBytes(ws []SeriesWrite) int {
	n := 0
	for _, w := range ws {
		n += len(w.Head)
		for _, p := range w.Parts {
			n += len(p)
		}
	}
	return n
}

// encodeSeries is s's write: the head, and the parts changed since the
// last. Called with s.mu held.
func (m *Monitor) encodeSeries(s *series) SeriesWrite {
	h := headDoc{
		Baseline: s.layout.digest, SlotMs: m.slotMs(), SlotIDs: s.slotID, Newest: s.newest,
		SiteRef: s.siteCounts != nil, Breached: s.breached, Notified: s.notified, Kinds: s.kinds,
		Seen: make([][2]int64, 0, len(s.seen)),
	}
	for start, id := range s.seen {
		h.Seen = append(h.Seen, [2]int64{start, id})
	}
	slices.SortFunc(h.Seen, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	for _, u := range s.unsent {
		h.Unsent = append(h.Unsent, u.v)
	}
	head, err := json.Marshal(&h)
	if err != nil {
		panic(err) // plain values only
	}
	w := SeriesWrite{Key: SeriesKey{s.key.site, s.key.model, s.key.version}, Prev: s.gen, Head: head, Parts: make(map[int][]byte, len(s.dirty))}
	for p := range s.dirty {
		switch {
		case p == PartSiteRef && s.siteCounts != nil:
			w.Parts[p] = appendInts(nil, s.siteCounts)
		case p == PartSiteRef:
			w.Parts[p] = nil
		case s.slotID[p] >= 0:
			w.Parts[p] = s.slots[p].encode(nil)
		default:
			w.Parts[p] = nil
		}
	}
	clear(s.dirty)
	return w
}

// wait waits until t's state is durable (or not). errStale: apply again.
func (t token) wait(ctx context.Context) error {
	if t.b == nil {
		t.s.mu.Lock()
		stale := t.s.epoch != t.epoch
		t.s.mu.Unlock()
		if stale {
			return errStale
		}
		return nil
	}
	select {
	case <-t.b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.b.err != nil {
		return fmt.Errorf("drift: store the windows: %w", t.b.err)
	}
	if e, ok := t.b.epoch[t.s]; !ok || e != t.epoch {
		return errStale
	}
	return nil
}

// sendUnsent hands the durable verdicts of s to the sink, oldest first,
// one sender at a time; once taken, they leave the series (written with
// its next write, which it asks for).
func (m *Monitor) sendUnsent(ctx context.Context, s *series) error {
	s.mu.Lock()
	if s.sending || len(s.unsent) == 0 || s.unsent[0].seq >= s.durableSeq {
		s.mu.Unlock()
		return nil
	}
	var send []unsentVerdict
	for _, u := range s.unsent {
		if u.seq < s.durableSeq {
			send = append(send, u)
		}
	}
	s.sending = true
	s.mu.Unlock()
	var err error
	sent := 0
	for _, u := range send {
		if err = m.notify(ctx, &u.v); err != nil {
			break
		}
		sent++
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sending = false
	if sent > 0 {
		last := send[sent-1].seq
		s.unsent = slices.DeleteFunc(s.unsent, func(u unsentVerdict) bool { return u.seq <= last })
		if s.loaded {
			m.enqueue(s) // forget them in the store too; nobody waits for it
		}
	}
	return err
}

// notify hands v to the sink.
func (m *Monitor) notify(ctx context.Context, v *Verdict) error {
	if m.opts.Sink == nil {
		return nil
	}
	if err := m.opts.Sink.Notify(ctx, *v); err != nil {
		return fmt.Errorf("drift: report verdict %s: %w", v.ID, err)
	}
	m.notified.Add(1)
	if v.Breached() {
		m.opts.Logger.Warn("drift verdict", "site", v.Site, "model", v.Model, "version", v.Version, "reason", v.Reason)
	}
	return nil
}

// encode appends a's binary form: every number as a varint (floats by
// their bits), lengths first.
func (a *agg) encode(b []byte) []byte {
	b = binary.AppendUvarint(b, 1) // format
	b = binary.AppendVarint(b, int64(a.messages))
	b = appendTime(b, a.start)
	b = appendTime(b, a.end)
	b = binary.AppendVarint(b, a.requests)
	b = binary.AppendVarint(b, a.scored)
	b = binary.AppendVarint(b, a.errors)
	b = binary.AppendVarint(b, a.rejected)
	b = appendInts(b, a.latency[:])
	b = appendInts(b, a.counts)
	b = appendFloats(b, a.below)
	b = appendFloats(b, a.above)
	b = appendInts(b, a.nulls)
	b = appendInts(b, a.typeErrors)
	b = appendFloats(b, a.lo)
	b = appendFloats(b, a.hi)
	return appendInts(b, a.unranged)
}

// decode sets a (made by newAgg(l)) from its binary form.
func (a *agg) decode(l *layout, b []byte) error {
	d := decoder{b: b}
	if d.uvarint() != 1 {
		return errors.New("unknown format")
	}
	a.messages = int(d.varint())
	a.start, a.end = d.time(), d.time()
	a.requests, a.scored, a.errors, a.rejected = d.varint(), d.varint(), d.varint(), d.varint()
	d.ints(a.latency[:])
	d.ints(a.counts)
	d.floats(a.below)
	d.floats(a.above)
	d.ints(a.nulls)
	d.ints(a.typeErrors)
	d.floats(a.lo)
	d.floats(a.hi)
	d.ints(a.unranged)
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	return d.err
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, math.MinInt64)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func appendInts(b []byte, v []int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, n := range v {
		b = binary.AppendVarint(b, n)
	}
	return b
}

func appendFloats(b []byte, v []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	for _, f := range v {
		// Reversed bits: the small integers sums mostly are end in zeros,
		// which become short varints.
		b = binary.AppendUvarint(b, reverseBytes(math.Float64bits(f)))
	}
	return b
}

func reverseBytes(u uint64) uint64 {
	var r uint64
	for range 8 {
		r = r<<8 | u&0xff
		u >>= 8
	}
	return r
}

func decodeInts(b []byte, n int) ([]int64, error) {
	d := decoder{b: b}
	v := make([]int64, n)
	d.ints(v)
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	return v, d.err
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	n := d.varint()
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (d *decoder) length(want int) bool {
	if n := d.uvarint(); d.err == nil && n != uint64(want) {
		d.err = fmt.Errorf("%d values, want %d", n, want)
	}
	return d.err == nil
}

func (d *decoder) ints(v []int64) {
	if d.length(len(v)) {
		for i := range v {
			v[i] = d.varint()
		}
	}
}

func (d *decoder) floats(v []float64) {
	if d.length(len(v)) {
		for i := range v {
			v[i] = math.Float64frombits(reverseBytes(d.uvarint()))
		}
	}
}
