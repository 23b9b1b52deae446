package events

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelfleet/modelfleet"
)

// Receiver is what the Puller needs of an Event Grid namespace
// subscription; *aznamespaces.ReceiverClient implements it.
type Receiver interface {
	ReceiveEvents(ctx context.Context, opts *aznamespaces.ReceiveEventsOptions) (aznamespaces.ReceiveEventsResponse, error)
	AcknowledgeEvents(ctx context.Context, lockTokens []string, opts *aznamespaces.AcknowledgeEventsOptions) (aznamespaces.AcknowledgeEventsResponse, error)
	ReleaseEvents(ctx context.Context, lockTokens []string, opts *aznamespaces.ReleaseEventsOptions) (aznamespaces.ReleaseEventsResponse, error)
	RejectEvents(ctx context.Context, lockTokens []string, opts *aznamespaces.RejectEventsOptions) (aznamespaces.RejectEventsResponse, error)
	RenewEventLocks(ctx context.Context, lockTokens []string, opts *aznamespaces.RenewEventLocksOptions) (aznamespaces.RenewEventLocksResponse, error)
}

// PullOptions configure a Puller; the zero value is usable.
type PullOptions struct {
	MaxEvents int           // per receive, 1 to 100 (default 10)
	MaxWait   time.Duration // the receive long-poll, 10 s to 120 s (default 60 s)
	// ReleaseDelay is how long a released event stays invisible before it is
	// redelivered (default 10 s). The service accepts 0, 10 s, 1 min, 10 min
	// and 1 h: other values are rounded up to the next of those.
	ReleaseDelay time.Duration
	// RenewEvery renews the locks of events still being dispatched (default
	// 20 s, a third of the subscription's default 60 s lock).
	RenewEvery time.Duration
	// Concurrency bounds the events of a batch dispatched at once (default 8).
	Concurrency int
	// DispatchTimeout bounds one event's dispatch (default 2 min); the lock
	// is renewed meanwhile.
	DispatchTimeout time.Duration
	Logger          *slog.Logger          // default slog.Default()
	Registerer      prometheus.Registerer // nil: counted, not registered
}

// Puller receives events from an Event Grid namespace subscription and
// dispatches them with the same contract as the webhook: an event is
// acknowledged only after Dispatch returned nil (Temporal accepted its
// effect), released with a delay on a transient failure (redelivered later,
// up to the subscription's max delivery count), and rejected on a
// permanent one (EINVALID), which dead-letters it.
type Puller struct {
	r       Receiver
	d       Dispatcher
	opts    PullOptions
	outcome *prometheus.CounterVec
}

// NewPuller returns a Puller; call Run.
func NewPuller(r Receiver, d Dispatcher, opts PullOptions) *Puller {
	o := &opts
	o.MaxEvents = min(max(o.MaxEvents, 0), 100)
	if o.MaxEvents == 0 {
		o.MaxEvents = 10
	}
	if o.MaxWait == 0 {
		o.MaxWait = time.Minute
	}
	o.MaxWait = min(max(o.MaxWait, 10*time.Second), 120*time.Second)
	if o.ReleaseDelay == 0 {
		o.ReleaseDelay = 10 * time.Second
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = 20 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.DispatchTimeout <= 0 {
		o.DispatchTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Puller{r: r, d: d, opts: opts, outcome: register(opts.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelfleet_events_pulled_total",
		Help: "Events pulled from an Event Grid namespace, by outcome (acknowledged, released, rejected, unsettled, renewed).",
	}, []string{"outcome"}))}
}

// Run pulls until ctx is done, backing off (1 s doubling to 30 s) while
// receiving fails. It returns nil when ctx is done.
func (p *Puller) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		if _, err := p.PullOnce(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			p.opts.Logger.Warn("event grid namespace receive failed; retrying", "error", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
	return nil
}

// pulled is one received event and what became of it.
type pulled struct {
	token string
	ev    Event
	err   error // from conversion or Dispatch
}

// PullOnce receives one batch, dispatches it and settles every event; it
// returns how many were received. Only the receive's error is returned:
// settling failures are logged (an unsettled event is redelivered when its
// lock expires, and dispatching it again is harmless).
func (p *Puller) PullOnce(ctx context.Context) (int, error) {
	maxEvents, wait := int32(p.opts.MaxEvents), int32(p.opts.MaxWait/time.Second)
	resp, err := p.r.ReceiveEvents(ctx, &aznamespaces.ReceiveEventsOptions{MaxEvents: &maxEvents, MaxWaitTime: &wait})
	if err != nil {
		return 0, err
	}
	items := make([]*pulled, 0, len(resp.Details))
	for _, det := range resp.Details {
		if det.BrokerProperties == nil || det.BrokerProperties.LockToken == nil {
			p.opts.Logger.Error("event grid namespace sent an event without a lock token; it cannot be settled", "event_id", clip(det.Event.ID))
			continue
		}
		it := &pulled{token: *det.BrokerProperties.LockToken}
		it.ev, it.err = FromCloudEvent(det.Event)
		items = append(items, it)
	}
	p.dispatch(ctx, items)
	// Settle even if ctx was cancelled meanwhile (shutdown): releasing now
	// beats waiting for the locks to expire.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	p.settle(sctx, items)
	return len(resp.Details), nil
}

// dispatch runs the valid events through the Dispatcher, renewing the locks
// of those not done yet every RenewEvery.
func (p *Puller) dispatch(ctx context.Context, items []*pulled) {
	var mu sync.Mutex
	busy := map[string]bool{}
	for _, it := range items {
		if it.err == nil {
			busy[it.token] = true
		}
	}
	stop := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(p.opts.RenewEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				tokens := make([]string, 0, len(busy))
				for tok := range busy {
					tokens = append(tokens, tok)
				}
				mu.Unlock()
				p.renew(ctx, tokens)
			}
		}
	}()
	sem := make(chan struct{}, p.opts.Concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		if it.err != nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, p.opts.DispatchTimeout)
			defer cancel()
			it.err = dispatchSafely(dctx, p.d, it.ev, p.opts.Logger)
			mu.Lock()
			delete(busy, it.token)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(stop)
	<-renewed
}

func (p *Puller) renew(ctx context.Context, tokens []string) {
	if len(tokens) == 0 {
		return
	}
	res, err := p.r.RenewEventLocks(ctx, tokens, nil)
	if err != nil {
		p.opts.Logger.Warn("renewing event locks failed", "events", len(tokens), "error", err)
		return
	}
	p.outcome.WithLabelValues("renewed").Add(float64(len(res.SucceededLockTokens)))
	p.failed("renew", res.FailedLockTokens)
}

// settle acknowledges, releases or rejects each event by its outcome.
func (p *Puller) settle(ctx context.Context, items []*pulled) {
	var ack, release, reject []string
	for _, it := range items {
		log := p.opts.Logger.With("event_id", clip(it.ev.ID), "event_type", clip(it.ev.Type))
		switch {
		case it.err == nil:
			ack = append(ack, it.token)
		case permanent(it.err):
			log.Warn("pulled event rejected (dead-lettered)", "error", it.err)
			reject = append(reject, it.token)
		default:
			log.Error("pulled event dispatch failed; released for redelivery", "error", it.err, "delay", p.opts.ReleaseDelay)
			release = append(release, it.token)
		}
	}
	if len(ack) > 0 {
		res, err := p.r.AcknowledgeEvents(ctx, ack, nil)
		p.settled("acknowledged", ack, res.SucceededLockTokens, res.FailedLockTokens, err)
	}
	if len(release) > 0 {
		delay := releaseDelay(p.opts.ReleaseDelay)
		res, err := p.r.ReleaseEvents(ctx, release, &aznamespaces.ReleaseEventsOptions{ReleaseDelayInSeconds: &delay})
		p.settled("released", release, res.SucceededLockTokens, res.FailedLockTokens, err)
	}
	if len(reject) > 0 {
		res, err := p.r.RejectEvents(ctx, reject, nil)
		p.settled("rejected", reject, res.SucceededLockTokens, res.FailedLockTokens, err)
	}
}

func (p *Puller) settled(outcome string, sent, ok []string, failed []aznamespaces.FailedLockToken, err error) {
	if err != nil {
		p.opts.Logger.Warn("settling pulled events failed; they are redelivered when their locks expire", "outcome", outcome, "events", len(sent), "error", err)
		p.outcome.WithLabelValues("unsettled").Add(float64(len(sent)))
		return
	}
	p.outcome.WithLabelValues(outcome).Add(float64(len(ok)))
	p.outcome.WithLabelValues("unsettled").Add(float64(len(failed)))
	p.failed(outcome, failed)
}

func (p *Puller) failed(op string, failed []aznamespaces.FailedLockToken) {
	for _, f := range failed {
		code, msg := "", ""
		if f.Error != nil {
			code, msg = deref(f.Error.Code), deref(f.Error.Message)
		}
		p.opts.Logger.Warn("event lock token refused; the event is redelivered when its lock expires", "op", op, "code", clip(code), "message", clip(msg))
	}
}

// releaseDelay rounds d up to a delay the service accepts.
func releaseDelay(d time.Duration) aznamespaces.ReleaseDelay {
	switch {
	case d <= 0:
		return aznamespaces.ReleaseDelayNoDelay
	case d <= 10*time.Second:
		return aznamespaces.ReleaseDelayTenSeconds
	case d <= time.Minute:
		return aznamespaces.ReleaseDelayOneMinute
	case d <= 10*time.Minute:
		return aznamespaces.ReleaseDelayTenMinutes
	}
	return aznamespaces.ReleaseDelayOneHour
}

// dispatchSafely turns a Dispatcher's panic into a transient error.
func dispatchSafely(ctx context.Context, d Dispatcher, ev Event, log *slog.Logger) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("dispatcher panicked", "event_id", clip(ev.ID), "panic", r)
			err = errors.New("dispatcher panicked")
		}
	}()
	return d.Dispatch(ctx, ev)
}

// FromCloudEvent converts a CloudEvent received from an Event Grid
// namespace into an Event. Data that is not JSON (binary data_base64) is
// kept as its base64 JSON string, as Decode does. Errors are EINVALID.
func FromCloudEvent(ce messaging.CloudEvent) (Event, error) {
	ev := Event{ID: ce.ID, Type: ce.Type, Source: ce.Source, Subject: deref(ce.Subject), Time: deref(ce.Time), Schema: SchemaCloudEvents}
	switch {
	case ev.ID == "":
		return Event{}, modelfleet.Errorf(modelfleet.EINVALID, "cloud event: missing %q", "id")
	case ev.Type == "":
		return Event{}, modelfleet.Errorf(modelfleet.EINVALID, "cloud event %q: missing %q", clip(ev.ID), "type")
	case ev.Source == "":
		return Event{}, modelfleet.Errorf(modelfleet.EINVALID, "cloud event %q: missing %q", clip(ev.ID), "source")
	case ce.SpecVersion != "1.0":
		return Event{}, modelfleet.Errorf(modelfleet.EINVALID, "cloud event %q: specversion %q is not supported", clip(ev.ID), clip(ce.SpecVersion))
	}
	switch d := ce.Data.(type) {
	case nil:
	case []byte:
		if json.Valid(d) {
			ev.Data = json.RawMessage(d)
		} else if len(d) > 0 {
			ev.Data, _ = json.Marshal(base64.StdEncoding.EncodeToString(d))
		}
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return Event{}, modelfleet.Errorf(modelfleet.EINVALID, "cloud event %q: data is not JSON", clip(ev.ID))
		}
		ev.Data = b
	}
	ev.Data = data(ev.Data)
	return ev, nil
}
