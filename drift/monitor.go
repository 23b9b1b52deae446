package drift

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// BaselineSource finds a model version's baseline. An error with code
// modelfleet.ENOTFOUND means there is none: such messages are dead-lettered
// (reason UnknownBaseline) and can be redriven once it is registered. Any
// other error is retried.
type BaselineSource interface {
	Baseline(ctx context.Context, model, version string) (*signals.Baseline, error)
}

// Baselines is a BaselineSource in memory, keyed by model and version.
type Baselines map[modelfleet.ModelRef]*signals.Baseline

// Baseline implements BaselineSource.
func (b Baselines) Baseline(_ context.Context, model, version string) (*signals.Baseline, error) {
	if base := b[modelfleet.ModelRef{Name: model, Version: version}]; base != nil {
		return base, nil
	}
	return nil, modelfleet.Errorf(modelfleet.ENOTFOUND, "no baseline for model %q version %q", model, version)
}

// Sink receives the verdicts a Monitor reports. The lead wiring connects it
// to running releases (signal release/<model>/<version>: a breach during a
// bake rolls back) and to retraining (signal-with-start retrain/<model>
// when Verdict.Drifted). An error makes the monitor forget the message it
// was evaluating, which is then delivered again, so a verdict is never lost
// to a sink that was briefly down.
type Sink interface {
	Notify(ctx context.Context, v Verdict) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, v Verdict) error

// Notify calls f.
func (f SinkFunc) Notify(ctx context.Context, v Verdict) error { return f(ctx, v) }

// Options configures a Monitor. Zero values take the defaults.
type Options struct {
	// SenderProperty, if set, names the queue message property that says
	// which site sent it (the gateway stamps it from the sender's
	// certificate): a message without it, or speaking of another site, is
	// dead-lettered. Set it only where the gateway is the queue's only
	// writer (the embedded queue): on Service Bus anyone allowed to send
	// could set the property.
	SenderProperty string
	// Sites, if set, verifies the site signature a message carries
	// (signals.Sign): one whose certificate does not chain to the site CA,
	// is revoked, or whose signature does not match is dead-lettered with
	// the reason (signals.Reason*), and one speaking of another site than
	// the certificate names is a SiteMismatch. With Sites or
	// SenderProperty set, every message needs a sender: a valid signature,
	// or the SenderProperty stamp; a signature, when present, is always
	// checked, and a stamp beside it must agree.
	Sites      *signals.SiteVerifier
	Baselines  BaselineSource
	Sink       Sink // nil: verdicts are only kept (Verdicts)
	Thresholds Thresholds
	// ModelThresholds, if set, gives model versions data-quality
	// thresholds of their own (their model card's monitoring block) in
	// place of Thresholds'. It is asked once per version and baseline.
	ModelThresholds ThresholdSource
	// Lookback is the rolling window's length. Default 10 min.
	Lookback time.Duration
	// Slots divides the window: it rolls forward one slot at a time, and
	// memory per series is Slots message-sized sums whatever the message
	// rate. Default 10.
	Slots int
	// MinRows is the fewest scored rows a window needs before it drifts.
	// Default 1000: smaller samples drift by chance (at 500 rows the
	// normalized Wasserstein distance of a sample from the baseline's own
	// distribution exceeds 0.1 about 5% of the time; see docs/signals.md).
	// It is also the default of Thresholds.MinQualityRows, the fewest rows
	// a data-quality rate is judged over.
	MinRows int64
	// Cooldown is how long a breach that persists waits before it is
	// reported again; the first breach and the recovery are reported at
	// once. Default 5 min; negative reports every evaluation.
	Cooldown time.Duration
	// OnEvaluated, if set, is called after each evaluation with its
	// verdict and how long applying the message took (window update and
	// every metric; decoding excluded), e.g. for a latency histogram. It
	// runs under the series' lock: keep it short.
	OnEvaluated func(v *Verdict, took time.Duration)
	// Reference is what windows are compared with: ReferenceTraining (the
	// default) or ReferenceSite.
	Reference string
	// State, if set, keeps the windows (and the site references, and the
	// verdicts the sink has not taken yet) in a store, so that a monitor
	// that restarts, or another replica's, continues them: see StateStore
	// and docs/signals.md ("The monitor's state"). A message is then done
	// (its handler returns, and the queue completes it) only once the store
	// holds a window that counts it, and verdicts go to the sink only once
	// the window they judge is stored. Nil: windows live in memory and
	// fill again after a restart.
	State StateStore
	// OnStateWrite, if set, is called after each write to State with how
	// many series it carried, how many of them it did not write because
	// another monitor had written them (their messages are applied again),
	// their bytes, and how long it took.
	OnStateWrite func(series, conflicts, bytes int, took time.Duration, err error)
	Logger       *slog.Logger
}

// Monitor consumes signal messages (Handle, for queue.Consume), keeps a
// rolling window per site, model and version, evaluates every drift metric
// against the baseline on each message, and reports verdicts to its Sink.
// Without Options.State its windows are in memory: after a restart they
// fill again from new messages, so detection resumes within one Lookback.
type Monitor struct {
	opts Options

	mu     sync.Mutex
	series map[seriesKey]*series

	// The batch of series changes gathering for the next write to
	// Options.State, and whether a flushLoop runs.
	pmu      sync.Mutex
	open     *flushBatch
	flushing bool

	layouts sync.Map // modelfleet.ModelRef -> *layout

	received, evaluated, duplicates, late, rejected, notified atomic.Int64
}

type seriesKey struct{ site, model, version string }

type series struct {
	mu       sync.Mutex
	key      seriesKey
	layout   *layout
	slots    []agg
	slotID   []int64 // absolute slot number held by each slot; -1 empty
	sum      agg     // total of the slots
	scratch  agg     // the window as it would be with the incoming message
	incoming agg
	seen     map[int64]int64 // window start (unix ms) -> slot number
	newest   int64
	breached bool
	notified time.Time
	kinds    uint8 // breachKinds of the last verdict reported
	last     *Verdict
	// siteRefs, with ReferenceSite, are the references of the site's first
	// full window; nil until it has one. siteCounts are the window's
	// counts they were made of.
	siteRefs   []*reference
	siteCounts []int64

	// With Options.State (state.go): loaded says memory holds what the
	// store does as of generation gen (plus the changes pending); epoch
	// counts the times memory was dropped after a failed write; dirty are
	// the parts changed since the last write; pending is the batch that
	// will write them, inflight the one writing. unsent are the verdicts
	// the sink has not taken, those with seq below durableSeq stored.
	loaded              bool
	gen                 int64
	epoch               uint64
	dirty               map[int]bool
	pending, inflight   *flushBatch
	unsent              []unsentVerdict
	nextSeq, durableSeq uint64
	sending             bool
}

// NewMonitor returns a monitor.
func NewMonitor(opts Options) (*Monitor, error) {
	if opts.Baselines == nil {
		return nil, errors.New("drift: monitor needs a baseline source")
	}
	t, err := opts.Thresholds.withDefaults()
	if err != nil {
		return nil, err
	}
	opts.Thresholds = t
	if opts.Lookback <= 0 {
		opts.Lookback = 10 * time.Minute
	}
	if opts.Slots <= 0 {
		opts.Slots = 10
	}
	if opts.MinRows <= 0 {
		opts.MinRows = 1000
	}
	if opts.Thresholds.MinQualityRows <= 0 {
		opts.Thresholds.MinQualityRows = opts.MinRows
	}
	if opts.Cooldown == 0 {
		opts.Cooldown = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch opts.Reference {
	case "":
		opts.Reference = ReferenceTraining
	case ReferenceTraining, ReferenceSite:
	default:
		return nil, fmt.Errorf("drift: reference %q: want %q or %q", opts.Reference, ReferenceTraining, ReferenceSite)
	}
	return &Monitor{opts: opts, series: map[seriesKey]*series{}}, nil
}

// Stats are a monitor's counts since it started.
type Stats struct {
	Received   int64 `json:"received"`   // valid signal messages
	Evaluated  int64 `json:"evaluated"`  // messages that moved a window and were evaluated
	Duplicates int64 `json:"duplicates"` // messages already in their window (same message ID)
	Late       int64 `json:"late"`       // messages older than their window, ignored
	Rejected   int64 `json:"rejected"`   // queue messages refused for good (dead-lettered)
	Notified   int64 `json:"notified"`   // verdicts sent to the sink
}

// Stats returns the counts.
func (m *Monitor) Stats() Stats {
	return Stats{
		Received: m.received.Load(), Evaluated: m.evaluated.Load(), Duplicates: m.duplicates.Load(),
		Late: m.late.Load(), Rejected: m.rejected.Load(), Notified: m.notified.Load(),
	}
}

// Handle is a queue.Consume handler: a body that is not a valid signal
// message or batch, or whose histograms do not fit the baseline, comes back
// as a queue.PermanentError whose reason names the problem, so it is
// dead-lettered at once and never stops the consumer.
func (m *Monitor) Handle(ctx context.Context, d queue.Delivery) error {
	if m.opts.SenderProperty == "" && m.opts.Sites == nil {
		return m.Process(ctx, d.Body)
	}
	sender, err := m.sender(d)
	if err != nil {
		m.rejected.Add(1)
		return err
	}
	return m.process(ctx, d.Body, sender)
}

// ReasonSiteMismatch is the dead-letter reason of a message about another
// site than the one that sent it.
const ReasonSiteMismatch = "SiteMismatch"

// ReasonUnknownSender is the dead-letter reason of a message that names
// no sender the monitor trusts: unsigned, and without the gateway's stamp.
const ReasonUnknownSender = "UnknownSender"

// sender is the site that sent d, by its site signature or the gateway's
// stamp (Options.Sites, Options.SenderProperty).
func (m *Monitor) sender(d queue.Delivery) (string, error) {
	stamp := ""
	if p := m.opts.SenderProperty; p != "" {
		stamp = d.Properties[p]
	}
	if m.opts.Sites != nil && signals.Signed(d.Message) {
		site, err := m.opts.Sites.Verify(d.Message, d.EnqueuedAt)
		if err != nil {
			return "", queue.PermanentReason(signals.ReasonOf(err), fmt.Errorf("signal message %s: %w", d.ID, err))
		}
		if stamp != "" && stamp != site {
			return "", queue.PermanentReason(ReasonSiteMismatch, fmt.Errorf("signal message %s: signed by site %s, stamped by the gateway as sent by site %s", d.ID, site, stamp))
		}
		return site, nil
	}
	switch {
	case stamp != "":
		return stamp, nil
	case m.opts.SenderProperty == "":
		return "", queue.PermanentReason(signals.ReasonUnsigned, fmt.Errorf("signal message %s: no site signature (properties %s, %s): every message on this queue must be signed by its site", d.ID, signals.PropertySignature, signals.PropertyCertificate))
	case m.opts.Sites != nil:
		return "", queue.PermanentReason(ReasonUnknownSender, fmt.Errorf("signal message %s: no %s property and no site signature: not sent through the gateway by an enrolled site", d.ID, m.opts.SenderProperty))
	}
	return "", queue.PermanentReason(ReasonUnknownSender, fmt.Errorf("signal message %s: no %s property: not sent through the gateway by an enrolled site", d.ID, m.opts.SenderProperty))
}

// Process applies one queue message body (a message or a batch).
func (m *Monitor) Process(ctx context.Context, body []byte) error { return m.process(ctx, body, "") }

// process applies body; with sender set, messages about another site are
// refused.
func (m *Monitor) process(ctx context.Context, body []byte, sender string) error {
	msgs, derr := signals.DecodeAny(body)
	if sender != "" {
		for _, msg := range msgs {
			if msg.Site != sender {
				m.rejected.Add(1)
				return queue.PermanentReason(ReasonSiteMismatch, fmt.Errorf("signal message: sent by site %s about site %s", sender, msg.Site))
			}
		}
	}
	var perm error
	var waits []pendingApply
	for i := range msgs {
		m.received.Add(1)
		var err error
		if m.opts.State != nil {
			var t token
			if t, err = m.applyStored(ctx, &msgs[i]); err == nil {
				waits = append(waits, pendingApply{i, t})
			}
		} else {
			err = m.apply(ctx, &msgs[i])
		}
		var pe *queue.PermanentError
		switch {
		case err == nil:
		case errors.As(err, &pe):
			if perm == nil {
				perm = err
			}
		default:
			// Transient: the whole queue message comes again; those
			// applied already are then duplicates.
			return err
		}
	}
	if err := m.settle(ctx, msgs, waits); err != nil {
		return err
	}
	if derr != nil {
		var de *signals.DecodeError
		errors.As(derr, &de)
		perm = queue.PermanentReason(de.Reason, derr)
	}
	if perm != nil {
		m.rejected.Add(1)
	}
	return perm
}

// pendingApply is a message applied to its series, waiting for the store.
type pendingApply struct {
	msg int
	t   token
}

// settle waits until the store holds the windows of the messages applied
// (or, for a duplicate, the window that holds it), applying again those
// whose series another replica changed meanwhile, then hands their
// series' verdicts to the sink. Only then may the queue message be
// completed: a message completed is counted in a stored window.
func (m *Monitor) settle(ctx context.Context, msgs []signals.Message, waits []pendingApply) error {
	for attempt := 0; len(waits) > 0; attempt++ {
		var again []pendingApply
		for _, w := range waits {
			err := w.t.wait(ctx)
			switch {
			case errors.Is(err, errStale):
				w.t.counted.Add(-1) // counted again when applied again
				again = append(again, w)
				continue
			case err != nil:
				return err
			}
			if err := m.sendUnsent(ctx, w.t.s); err != nil {
				return err
			}
		}
		if len(again) > 0 && attempt == maxStaleRetries {
			return fmt.Errorf("drift: series of %s changed elsewhere %d times while applying a message", msgs[again[0].msg].Site, attempt)
		}
		waits = waits[:0]
		for _, w := range again {
			t, err := m.applyStored(ctx, &msgs[w.msg])
			if err != nil {
				return err // permanent errors were found on the first pass
			}
			waits = append(waits, pendingApply{w.msg, t})
		}
	}
	return nil
}

// applyStored adds one message to its series' window (loaded from the
// store first if need be), evaluates it, queues the verdict for the sink
// if it is news, and returns what to wait for before the message counts:
// the write of the series.
func (m *Monitor) applyStored(ctx context.Context, msg *signals.Message) (token, error) {
	began := time.Now()
	l, err := m.layoutFor(ctx, msg)
	if err != nil {
		return token{}, err
	}
	s := m.seriesFor(seriesKey{msg.Site, msg.Model, msg.Version})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := m.load(ctx, s, l); err != nil {
		return token{}, err
	}
	if s.layout.digest != l.digest {
		m.resetSeries(s, l) // the version's baseline changed: start over
		m.markAllDirty(s)
	}
	l = s.layout
	slots := int64(m.opts.Slots)
	startMs := msg.WindowStart.UnixMilli()
	id := startMs / m.slotMs()
	if _, dup := s.seen[startMs]; dup {
		m.duplicates.Add(1)
		t := s.current()
		t.counted = &m.duplicates
		return t, nil
	}
	if s.newest >= 0 && id <= s.newest-slots {
		m.late.Add(1)
		t := s.current()
		t.counted = &m.late
		return t, nil
	}
	if err := s.incoming.fromMessage(l, msg); err != nil {
		return token{}, err
	}
	newest := max(s.newest, id)
	s.scratch.copyFrom(&s.sum)
	s.scratch.add(&s.incoming, 1)
	for i, sid := range s.slotID {
		if sid >= 0 && sid <= newest-slots {
			s.scratch.add(&s.slots[i], -1)
		}
	}
	s.bounds(&s.scratch, newest, m.opts.Slots)
	s.sums(&s.scratch, int(id%slots), newest, m.opts.Slots)
	hadRef := s.siteCounts != nil
	v := m.evaluate(s, &s.scratch)
	if !hadRef && s.siteCounts != nil {
		s.dirty[PartSiteRef] = true
	}
	send := m.news(s, &v)
	m.noted(s, &v, send)
	if send && m.opts.Sink != nil {
		s.unsent = append(s.unsent, unsentVerdict{seq: s.nextSeq, v: v})
		s.nextSeq++
	}
	m.commit(s, id, newest, startMs)
	s.dirty[int(id%slots)] = true
	m.evaluated.Add(1)
	if m.opts.OnEvaluated != nil {
		m.opts.OnEvaluated(&v, time.Since(began))
	}
	t := m.enqueue(s)
	t.counted = &m.evaluated
	return t, nil
}

// apply adds one message to its series' window, evaluates it and reports
// the verdict. The window changes only once the sink has taken the
// verdict.
func (m *Monitor) apply(ctx context.Context, msg *signals.Message) error {
	began := time.Now()
	l, err := m.layoutFor(ctx, msg)
	if err != nil {
		return err
	}
	s := m.seriesFor(seriesKey{msg.Site, msg.Model, msg.Version})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.layout == nil || s.layout.digest != l.digest {
		m.resetSeries(s, l) // the version's baseline changed: start over
	}
	l = s.layout
	slotMs := max(m.opts.Lookback.Milliseconds()/int64(m.opts.Slots), 1)
	startMs := msg.WindowStart.UnixMilli()
	id := startMs / slotMs
	if _, dup := s.seen[startMs]; dup {
		m.duplicates.Add(1)
		return nil
	}
	if s.newest >= 0 && id <= s.newest-int64(m.opts.Slots) {
		m.late.Add(1)
		return nil
	}
	if err := s.incoming.fromMessage(l, msg); err != nil {
		return err
	}
	newest := max(s.newest, id)
	s.scratch.copyFrom(&s.sum)
	s.scratch.add(&s.incoming, 1)
	for i, sid := range s.slotID {
		if sid >= 0 && sid <= newest-int64(m.opts.Slots) {
			s.scratch.add(&s.slots[i], -1)
		}
	}
	s.bounds(&s.scratch, newest, m.opts.Slots)
	s.sums(&s.scratch, int(id%int64(m.opts.Slots)), newest, m.opts.Slots)
	v := m.evaluate(s, &s.scratch)
	if err := m.report(ctx, s, &v); err != nil {
		return err
	}
	m.commit(s, id, newest, startMs)
	m.evaluated.Add(1)
	if m.opts.OnEvaluated != nil {
		m.opts.OnEvaluated(&v, time.Since(began))
	}
	return nil
}

// report sends v to the sink when it is news.
func (m *Monitor) report(ctx context.Context, s *series, v *Verdict) error {
	send := m.news(s, v)
	if send {
		if err := m.notify(ctx, v); err != nil {
			return err
		}
	}
	m.noted(s, v, send)
	return nil
}

// news says whether v is news to the sink: a new breach, a breach that
// persisted past the cooldown, or a recovery.
func (m *Monitor) news(s *series, v *Verdict) bool {
	kinds := breachKinds(v)
	switch {
	case v.Breached():
		// News: a breach, or a kind of breach the last report did not
		// have (data quality, then drift), or one outlasting the cooldown.
		return kinds&^s.kinds != 0 || m.opts.Cooldown < 0 || v.WindowEnd.Sub(s.notified) >= m.opts.Cooldown
	case s.breached, m.opts.Cooldown < 0:
		return true
	}
	return false
}

// noted records v as the series' latest verdict, sent or not.
func (m *Monitor) noted(s *series, v *Verdict, sent bool) {
	if sent {
		s.notified = v.WindowEnd
		s.kinds = breachKinds(v)
	} else if !v.Breached() {
		s.kinds = 0
	}
	s.breached = v.Breached()
	s.last = v
}

// commit makes the scratch window the series' window.
func (m *Monitor) commit(s *series, id, newest, startMs int64) {
	for i, sid := range s.slotID {
		if sid >= 0 && sid <= newest-int64(m.opts.Slots) {
			s.slots[i].reset()
			s.slotID[i] = -1
		}
	}
	for start, sid := range s.seen {
		if sid <= newest-int64(m.opts.Slots) {
			delete(s.seen, start)
		}
	}
	i := int(id % int64(m.opts.Slots))
	s.slots[i].add(&s.incoming, 1)
	s.slotID[i] = id
	s.seen[startMs] = id
	s.newest = newest
	s.sum, s.scratch = s.scratch, s.sum
}

// bounds sets a window's start and end, and its values' ranges, from the
// slots it keeps and the incoming message: a subtraction cannot narrow
// them.
func (s *series) bounds(a *agg, newest int64, slots int) {
	a.start, a.end = s.incoming.start, s.incoming.end
	copy(a.lo, s.incoming.lo)
	copy(a.hi, s.incoming.hi)
	for i, sid := range s.slotID {
		if sid >= 0 && sid > newest-int64(slots) {
			a.widen(s.slots[i].start, s.slots[i].end)
			a.widenRange(&s.slots[i])
		}
	}
}

// sums sets a window's float sums (each histogram's values below and
// above its range) from the slots it keeps and the incoming message, in
// slot order: a running sum that adds and subtracts slots would drift from
// that in its last bits, and a window loaded from the store (made of its
// slots) would then judge differently from the one it continues.
func (s *series) sums(a *agg, in int, newest int64, slots int) {
	clear(a.below)
	clear(a.above)
	for i, sid := range s.slotID {
		kept := sid >= 0 && sid > newest-int64(slots)
		if !kept && i != in {
			continue
		}
		for h := range a.below {
			var below, above float64
			if kept {
				below, above = s.slots[i].below[h], s.slots[i].above[h]
			}
			if i == in {
				below += s.incoming.below[h]
				above += s.incoming.above[h]
			}
			a.below[h] += below
			a.above[h] += above
		}
	}
}

func (m *Monitor) seriesFor(k seriesKey) *series {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[k]
	if s == nil {
		s = &series{key: k}
		m.series[k] = s
	}
	return s
}

func (m *Monitor) resetSeries(s *series, l *layout) {
	s.layout = l
	s.slots = make([]agg, m.opts.Slots)
	s.slotID = make([]int64, m.opts.Slots)
	for i := range s.slots {
		s.slots[i] = newAgg(l)
		s.slotID[i] = -1
	}
	s.sum, s.scratch, s.incoming = newAgg(l), newAgg(l), newAgg(l)
	s.seen = map[int64]int64{}
	s.newest = -1
	s.breached, s.kinds = false, 0
	s.siteRefs, s.siteCounts = nil, nil
}

// noBaseline is the layout of messages without histograms.
var noBaseline = newLayout(nil)

// layoutFor finds the layout of a message's baseline, checking that the
// baseline the site binned with is the one registered for its version. A
// cached baseline that no longer matches is looked up again: the version's
// baseline may have been replaced.
func (m *Monitor) layoutFor(ctx context.Context, msg *signals.Message) (*layout, error) {
	if msg.Baseline == "" {
		return noBaseline, nil
	}
	ref := modelfleet.ModelRef{Name: msg.Model, Version: msg.Version}
	if l, ok := m.layouts.Load(ref); ok && l.(*layout).digest == msg.Baseline {
		return l.(*layout), nil
	}
	b, err := m.opts.Baselines.Baseline(ctx, msg.Model, msg.Version)
	switch {
	case modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND:
		return nil, queue.PermanentReason(ReasonUnknownBaseline, fmt.Errorf("signal %q: model %q version %q has no baseline: %w", msg.MessageID, msg.Model, msg.Version, err))
	case err != nil:
		return nil, fmt.Errorf("drift: baseline of model %q version %q: %w", msg.Model, msg.Version, err)
	case b.Digest() != msg.Baseline:
		return nil, mismatch(msg, "it was binned by baseline %q, but the version's baseline is %q", msg.Baseline, b.Digest())
	}
	l := newLayout(b)
	if l.t, err = m.thresholdsFor(ctx, ref); err != nil {
		return nil, err
	}
	if old, loaded := m.layouts.LoadOrStore(ref, l); loaded {
		if old.(*layout).digest == l.digest {
			return old.(*layout), nil // another handler got there first
		}
		m.layouts.Store(ref, l)
	}
	return l, nil
}

// thresholdsFor is what a model version is judged with: Options.Thresholds
// with the version's own monitoring thresholds, if it has any. Invalid ones
// (which a model card's parser refuses) are logged and ignored: a typo must
// not stop the version's signals.
func (m *Monitor) thresholdsFor(ctx context.Context, ref modelfleet.ModelRef) (Thresholds, error) {
	t := m.opts.Thresholds
	if m.opts.ModelThresholds == nil {
		return t, nil
	}
	c, err := m.opts.ModelThresholds.Monitoring(ctx, ref.Name, ref.Version)
	switch {
	case modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND || (err == nil && c == nil):
		return t, nil
	case err != nil:
		return t, fmt.Errorf("drift: monitoring thresholds of model %q version %q: %w", ref.Name, ref.Version, err)
	}
	if err := c.Validate(); err != nil {
		m.opts.Logger.Warn("drift: ignoring the model's monitoring thresholds", "model", ref.Name, "version", ref.Version, "err", err)
		return t, nil
	}
	own, err := c.Apply(t).withDefaults()
	if err != nil {
		m.opts.Logger.Warn("drift: ignoring the model's monitoring thresholds", "model", ref.Name, "version", ref.Version, "err", err)
		return t, nil
	}
	return own, nil
}

// Verdicts returns the latest verdict of every series, sorted by site,
// model and version.
func (m *Monitor) Verdicts() []Verdict {
	m.mu.Lock()
	all := make([]*series, 0, len(m.series))
	for _, s := range m.series {
		all = append(all, s)
	}
	m.mu.Unlock()
	var out []Verdict
	for _, s := range all {
		s.mu.Lock()
		if s.last != nil {
			out = append(out, *s.last)
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Verdict) int {
		return strings.Compare(a.Site+"\x00"+a.Model+"\x00"+a.Version, b.Site+"\x00"+b.Model+"\x00"+b.Version)
	})
	return out
}

// evaluate judges a window.
func (m *Monitor) evaluate(s *series, a *agg) Verdict {
	l, t := s.layout, &s.layout.t
	if len(l.refs) == 0 {
		t = &m.opts.Thresholds // no baseline: nothing is judged
	}
	v := Verdict{
		ID:   verdictID(s.key.site, s.key.model, s.key.version, a.end),
		Site: s.key.site, Model: s.key.model, Version: s.key.version, Baseline: l.digest,
		WindowStart: a.start, WindowEnd: a.end, Messages: a.messages,
		Requests: a.requests, Scored: a.scored, Errors: a.errors,
		P99LatencyMs: p99(a.latency[:], a.requests),
		Insufficient: a.scored < m.opts.MinRows,
		Features:     make([]FeatureVerdict, 0, len(l.refs)),
	}
	if a.requests > 0 {
		v.ErrorRate = float64(a.errors) / float64(a.requests)
	}
	refs := l.refs
	if m.opts.Reference == ReferenceSite && len(refs) > 0 {
		if s.siteRefs == nil {
			if r, ok := m.siteReference(l, a); ok {
				s.siteRefs, s.siteCounts = r, slices.Clone(a.counts)
			}
		}
		if s.siteRefs == nil {
			// Still collecting the site's reference: nothing can drift yet.
			v.Insufficient = true
			return v
		}
		refs = s.siteRefs
	}
	for h, r := range refs {
		off := l.offsets[h]
		metrics, n, ok := r.evaluate(a.counts[off:off+len(r.p)], a.below[h], a.above[h])
		if !ok && a.nulls[h] == 0 && a.typeErrors[h] == 0 {
			continue // not in this window
		}
		rule, kind := t.Numerical, r.f.Kind
		switch {
		case h == l.pred && r.categorical && !categoricalMetric(t.Prediction.Metric):
			// A multiclass model's predicted class: the class mix, judged
			// by the categorical rule (the Wasserstein distance needs an
			// order the classes do not have).
			rule, kind = t.Categorical, "prediction"
		case h == l.pred:
			rule, kind = t.Prediction, "prediction"
		case r.categorical:
			rule = t.Categorical
		}
		f := FeatureVerdict{Name: r.f.Name, Kind: kind, Rows: n, Metrics: metrics, Metric: rule.Metric, Threshold: rule.Threshold}
		if ok {
			f.Value = metrics.Value(rule.Metric)
			f.Breached = !v.Insufficient && rule.Breached(f.Value)
		}
		f.quality(t, r, a, h, a.counts[off:off+len(r.p)], h != l.pred)
		if h == l.pred {
			p := f // only the prediction's escapes to the heap
			v.Prediction = &p
		} else {
			v.Features = append(v.Features, f)
		}
	}
	v.summarize(t)
	return v
}

// quality fills a feature's (or the prediction's) data-quality figures
// from the window a, histogram h with counts, and with judge set judges
// them against t: each rate over at least t.MinQualityRows rows, the
// out-of-bounds one on the values beyond the baseline's bounds widened by
// the margin (see FeatureVerdict.BeyondMarginRate).
func (f *FeatureVerdict) quality(t *Thresholds, r *reference, a *agg, h int, counts []int64, judge bool) {
	f.QualityRows = a.scored + a.rejected
	if f.QualityRows > 0 {
		rows := float64(f.QualityRows)
		f.NullRate, f.TypeErrorRate = float64(a.nulls[h])/rows, float64(a.typeErrors[h])/rows
	}
	var below, above int64
	last := len(counts) - 1
	if r.categorical {
		above = counts[last] // categories the baseline never saw
	} else {
		below, above = counts[0], counts[last]
		e := r.f.Edges
		f.Bounds = Range{Min: e[0], Max: e[len(e)-1], Valid: true}
		f.Margin = t.margin() * (f.Bounds.Max - f.Bounds.Min)
	}
	beyond := below + above
	if a.unranged[h] == 0 && a.lo[h] <= a.hi[h] {
		f.Seen = Range{Min: a.lo[h], Max: a.hi[h], Valid: true}
		if f.Bounds.Valid {
			if f.Seen.Min >= f.Bounds.Min-f.Margin {
				beyond -= below
			}
			if f.Seen.Max <= f.Bounds.Max+f.Margin {
				beyond -= above
			}
		}
	}
	if f.Rows > 0 {
		f.OutOfBoundsRate = float64(below+above) / float64(f.Rows)
		f.BeyondMarginRate = float64(beyond) / float64(f.Rows)
	}
	if !judge {
		return
	}
	enough := f.QualityRows >= t.MinQualityRows
	f.nullBreached = enough && a.nulls[h] > 0 && f.NullRate > t.NullRate
	f.typeBreached = enough && a.typeErrors[h] > 0 && f.TypeErrorRate > t.TypeErrorRate
	f.boundsBreached = f.Rows >= t.MinQualityRows && beyond > 0 && f.BeyondMarginRate > t.OutOfBoundsRate
	f.QualityBreached = f.nullBreached || f.typeBreached || f.boundsBreached
}

// p99 is the upper bound of the latency bucket holding the 99th percentile.
func p99(counts []int64, total int64) float64 {
	if total == 0 {
		return 0
	}
	want := int64(math.Ceil(0.99 * float64(total)))
	var cum int64
	for i, c := range counts {
		cum += c
		if cum >= want && i < len(signals.LatencyBoundsMs) {
			return signals.LatencyBoundsMs[i]
		}
	}
	return signals.LatencyBoundsMs[len(signals.LatencyBoundsMs)-1]
}

// breachKinds is a verdict's breaches as a set: data drift, prediction
// drift, data quality.
func breachKinds(v *Verdict) uint8 {
	var k uint8
	if v.DataDrift {
		k |= 1
	}
	if v.PredictionDrift {
		k |= 2
	}
	if v.QualityBreached {
		k |= 4
	}
	return k
}
