package fleet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet"
)

// notifier wakes agents long-polling for their desired state.
type notifier struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (n *notifier) wait(site string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = map[string]chan struct{}{}
	}
	c, ok := n.ch[site]
	if !ok {
		c = make(chan struct{})
		n.ch[site] = c
	}
	return c
}

// forget drops the wake-up channel of a site that turned out not to exist,
// so polls for unknown site IDs leave nothing behind.
func (n *notifier) forget(site string, c <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.ch[site]; ok && (<-chan struct{})(cur) == c {
		delete(n.ch, site)
	}
}

// notifyAll wakes every waiting agent: wake-ups may have been lost.
func (n *notifier) notifyAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s, c := range n.ch {
		close(c)
		delete(n.ch, s)
	}
}

func (n *notifier) notify(sites []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range sites {
		if c, ok := n.ch[s]; ok {
			close(c)
			delete(n.ch, s)
		}
	}
}

// Step applies one traffic step to every listed site in one transaction. It
// is idempotent (a retried step changes nothing) and refuses sites whose
// lease another release holds, reporting them as conflicts.
func (d *Directory) Step(req modelfleet.StepRequest) (modelfleet.StepResult, error) {
	if err := modelfleet.ValidateName("model name", req.Model); err != nil {
		return modelfleet.StepResult{}, err
	}
	workloadOnly := req.New.Version == ""
	switch {
	case workloadOnly && req.Workload == nil:
		return modelfleet.StepResult{}, modelfleet.Errorf(modelfleet.EINVALID, "a step carries a model version, a workload version, or both; this one carries neither")
	case !workloadOnly && (req.New.Weight < 1 || req.New.Weight > 100):
		return modelfleet.StepResult{}, modelfleet.Errorf(modelfleet.EINVALID, "step weight %d is out of range 1..100", req.New.Weight)
	}
	if err := checkStepWorkload(req); err != nil {
		return modelfleet.StepResult{}, err
	}
	if req.New.StatementRef != "" {
		return modelfleet.StepResult{}, modelfleet.Errorf(modelfleet.EINVALID, "a step carries its version's release statement, not a statementRef (the directory's own name for a statement it keeps)")
	}
	if err := d.keepStatement(context.Background(), req.New.Statement); err != nil {
		return modelfleet.StepResult{}, err
	}
	return d.update(req.Sites, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		dm := ds.Models[req.Model]
		if dm.Release != "" && dm.Release != req.Release {
			return false, &modelfleet.Conflict{Site: ds.Site, Holder: dm.Release}
		}
		wchanged, conflict := stepWorkload(ds, req)
		if conflict != nil {
			return false, conflict
		}
		if workloadOnly {
			// The lease keeps a release of the model away while the
			// workload changes; a site without the model has none to take.
			if _, ok := ds.Models[req.Model]; ok {
				if dm.Release == "" {
					dm.Release, dm.Previous = req.Release, dm.Versions
				}
				dm.Wave, dm.ApprovedBy = req.Wave, req.ApprovedBy
				ds.Models[req.Model] = dm
			}
			return wchanged, nil
		}
		if dm.Release == "" {
			dm.Release, dm.Previous = req.Release, dm.Versions
		}
		next := split(dm.Previous, req.New)
		if slices.EqualFunc(next, dm.Versions, sameVersion) {
			ds.Models[req.Model] = dm
			return wchanged, nil
		}
		dm.Versions, dm.TraceParent = next, req.TraceParent
		dm.Wave, dm.ApprovedBy = req.Wave, req.ApprovedBy
		ds.Models[req.Model] = dm
		return true, nil
	})
}

// split gives the new version its weight and the previous primary the rest.
func split(previous []modelfleet.DesiredVersion, nv modelfleet.DesiredVersion) []modelfleet.DesiredVersion {
	var primary *modelfleet.DesiredVersion
	for i := range previous {
		p := &previous[i]
		if p.Version != nv.Version && (primary == nil || p.Weight > primary.Weight) {
			primary = p
		}
	}
	if primary == nil || nv.Weight == 100 {
		nv.Weight = 100
		return []modelfleet.DesiredVersion{nv}
	}
	old := *primary
	old.Weight = 100 - nv.Weight
	return []modelfleet.DesiredVersion{nv, old}
}

func sameVersion(a, b modelfleet.DesiredVersion) bool {
	return a.Version == b.Version && a.Digest == b.Digest && a.Weight == b.Weight
}

// Rollback restores, at every listed site the release holds, what the site
// served before the release, and frees the lease. Sites the release never
// touched are left alone; a site that is offline converges when it returns.
func (d *Directory) Rollback(release, model string, sites []string, traceParent string) (modelfleet.StepResult, error) {
	return d.update(sites, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		wchanged := releaseWorkloads(ds, release, true, traceParent)
		dm, ok := ds.Models[model]
		if !ok || dm.Release != release {
			return wchanged, nil
		}
		ds.Models[model] = modelfleet.DesiredModel{Versions: dm.Previous, TraceParent: traceParent}
		return true, nil
	})
}

// Finish frees the release's leases, keeping what the sites serve.
func (d *Directory) Finish(release, model string, sites []string) (modelfleet.StepResult, error) {
	return d.update(sites, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		releaseWorkloads(ds, release, false, "")
		dm, ok := ds.Models[model]
		if !ok || dm.Release != release {
			return false, nil
		}
		ds.Models[model] = modelfleet.DesiredModel{Versions: dm.Versions}
		return false, nil // lease bookkeeping only: nothing for the agent to do
	})
}

// update runs f on each site's desired state in one transaction, bumping the
// revision where f changed something, and wakes those sites' agents.
func (d *Directory) update(sites []string, f UpdateFunc) (modelfleet.StepResult, error) {
	res, changed, err := d.store.UpdateDesired(context.Background(), sites, func(ds *modelfleet.Desired) (bool, *modelfleet.Conflict) {
		mod, conflict := f(ds)
		d.refStatements(ds) // kept once, named by ref (statements.go)
		return mod, conflict
	})
	if err != nil {
		return modelfleet.StepResult{}, fmt.Errorf("fleet: update desired state: %w", err)
	}
	d.notify.notify(changed)
	return res, nil
}

// Desired returns a site's desired state. If its revision is not above
// after, it waits until it is or ctx is done (long poll), then returns
// whatever is current.
//
// It checks the revision alone (Store.Revision) when the poll starts and
// after a re-read that no write woke, and reads the whole state once there
// is something new, or a write woke it, or the wait is over: an agent
// starts its next long poll right after applying a change, when the
// revision it asks past is the current one, and 10,000 of them do at once
// after a rollback.
//
// ctx bounds the wait, not the reads: the store is read even when ctx is
// already done (a request without a wait), each read bounded by
// desiredReadTimeout. A wait that ends because ctx was cancelled (the
// caller is gone) rather than at its deadline returns ctx's error without
// a last read.
func (d *Directory) Desired(ctx context.Context, site string, after int64) (modelfleet.Desired, error) {
	return longPoll(d, ctx, site, after, func(ctx context.Context) (modelfleet.Desired, int64, error) {
		ds, err := d.store.Desired(ctx, site)
		if err == nil {
			err = d.inlineStatements(ctx, &ds)
		}
		return ds, ds.Revision, err
	})
}

// desiredDoc is Desired as the stored document (Store.DesiredDoc); nil
// before the site's first step.
func (d *Directory) desiredDoc(ctx context.Context, site string, after int64) ([]byte, error) {
	return longPoll(d, ctx, site, after, func(ctx context.Context) ([]byte, int64, error) {
		return d.store.DesiredDoc(ctx, site)
	})
}

// longPoll is Desired's wait, with read reading the site's desired state
// (and its revision) in whichever form the caller answers with.
func longPoll[T any](d *Directory, ctx context.Context, site string, after int64, read func(context.Context) (T, int64, error)) (T, error) {
	rctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), desiredReadTimeout)
	}
	// A site that turned out not to exist leaves no wake-up channel.
	forget := func(wake <-chan struct{}, err error) {
		if modelfleet.ErrorCode(err) == modelfleet.ENOTFOUND {
			d.notify.forget(site, wake)
		}
	}
	readAll := func(wake <-chan struct{}) (T, int64, error) {
		c, cancel := rctx()
		defer cancel()
		v, rev, err := read(c)
		forget(wake, err)
		return v, rev, err
	}
	woken := false
	for {
		wake := d.notify.wait(site)
		if after < 0 || woken {
			// Every revision is above after, or a write woke the poll:
			// most likely the one it waits for, so the whole state.
			v, rev, err := readAll(wake)
			if err != nil || rev > after {
				return v, err
			}
		} else {
			c, cancel := rctx()
			rev, err := d.Revision(c, site)
			cancel()
			forget(wake, err)
			if err != nil {
				var zero T
				return zero, err
			}
			if rev > after {
				v, _, err := readAll(wake)
				return v, err
			}
		}
		// A store shared by replicas wakes this one when another writes;
		// the poll covers a wake-up lost while its listener reconnected.
		var poll <-chan time.Time
		var t *time.Timer
		if d.poll > 0 {
			t = time.NewTimer(d.poll)
			poll = t.C
		}
		select {
		case <-wake:
			woken = true
		case <-poll:
			woken = false
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if err := ctx.Err(); errors.Is(err, context.Canceled) {
			// The caller has gone (a client that hung up): nobody reads
			// the answer, so the store is not asked for it.
			var zero T
			return zero, err
		} else if err != nil {
			v, _, err := readAll(wake)
			return v, err
		}
	}
}

// Revision returns the revision of a site's desired state (0 before its
// first step) without reading the rest of it.
func (d *Directory) Revision(ctx context.Context, site string) (int64, error) {
	return d.store.Revision(ctx, site)
}

// desiredReadTimeout bounds one read of a desired state from the store.
const desiredReadTimeout = 10 * time.Second

// ReportActual records what a site's agent serves after applying a
// revision. A report carrying the site's record (Actual.SiteRecord) is
// also the site's heartbeat: record and report are stored in the same
// transaction, so an agent writes once per interval, and a site not yet in
// the directory is registered by its first report. Without a record the
// site must already be registered. A bad record rejects the whole report.
func (d *Directory) ReportActual(a modelfleet.Actual) error {
	if err := modelfleet.ValidateName("site id", a.Site); err != nil {
		return err
	}
	rec := a.SiteRecord
	if rec != nil {
		if rec.ID != a.Site {
			return modelfleet.Errorf(modelfleet.EINVALID, "site record %q does not match the report's site %q", rec.ID, a.Site)
		}
		r := *rec
		if err := d.stampSite(&r); err != nil {
			return err
		}
		rec = &r
	}
	// The record lives in the sites bucket only: the stored report does
	// not carry a second, staler copy of it.
	a.SiteRecord = nil
	err := d.store.ReportActual(context.Background(), rec, a)
	if err != nil {
		return fmt.Errorf("fleet: report of site %q: %w", a.Site, err)
	}
	return nil
}

// Progress compares each site's reported state with its desired revision.
// With no version (a workload-only release) the figures are those of every
// version of model the converged sites serve, and no prediction shift is
// measured: nothing serves beside anything new.
func (d *Directory) Progress(model, version string, sites []string) (modelfleet.Progress, error) {
	p := modelfleet.Progress{Converged: []string{}, Pending: []string{}}
	nbins := len(modelfleet.PredictionBins) + 1
	newPreds, oldPreds := make([]float64, nbins), make([]float64, nbins)
	c := &modelfleet.Counters{
		Latency:     make([]int64, len(modelfleet.LatencyBuckets)+1),
		Predictions: make([]int64, nbins),
		Replaced:    make([]int64, nbins),
	}
	var epochs uint64
	states, err := d.store.Progress(context.Background(), sites, model)
	if err != nil {
		return modelfleet.Progress{}, fmt.Errorf("fleet: progress: %w", err)
	}
	for i, site := range sites {
		st := states[i]
		if st.pending() {
			p.Pending = append(p.Pending, site)
			continue
		}
		ds, a := modelfleet.Desired{Workloads: st.Workloads}, modelfleet.Actual{Workloads: st.Running}
		am := st.Model
		switch {
		case am.Error != "":
			p.Failed = append(p.Failed, modelfleet.SiteFailure{Site: site, Reason: am.Error})
		case workloadError(ds, a, model) != "":
			p.Failed = append(p.Failed, modelfleet.SiteFailure{Site: site, Reason: workloadError(ds, a, model)})
		case workloadPending(ds, a, model):
			p.Pending = append(p.Pending, site)
		default:
			p.Converged = append(p.Converged, site)
			var epoch int64
			for _, v := range am.Versions {
				epoch = max(epoch, v.Epoch)
				if v.Version == version || version == "" {
					p.Requests += v.Requests
					p.Errors += v.Errors
					p.P99LatencyMs = max(p.P99LatencyMs, v.P99LatencyMs)
					c.Requests += max(v.Requests, 0)
					c.Errors += min(max(v.Errors, 0), max(v.Requests, 0))
					addCounts(c.Latency, v.Latency)
					addCounts(c.Predictions, v.Predictions)
					c.Labelled += max(v.Labelled, 0)
					c.Correct += max(v.Correct, 0)
					c.Residuals = addResiduals(c.Residuals, v.Residuals)
				}
				if v.Version == version {
					p.Labelled += v.Labelled
					p.Correct += v.Correct
					p.Residuals = addResiduals(p.Residuals, v.Residuals)
					addBins(newPreds, v.Predictions)
				} else if version != "" {
					addBins(oldPreds, v.Predictions)
					addCounts(c.Replaced, v.Predictions)
				}
			}
			epochs += siteEpoch(site, epoch)
		}
	}
	c.Sites = len(p.Converged)
	c.Epochs = strconv.FormatUint(epochs, 16)
	p.Counters = c
	n, o := total(newPreds), total(oldPreds)
	p.ShiftSamples = int64(n)
	if n >= modelfleet.MinShiftSamples && o >= modelfleet.MinShiftSamples {
		p.PredictionShift = modelfleet.JensenShannonDistance(newPreds, oldPreds)
	}
	return p, nil
}

// addBins adds a site's prediction counts into sum; counts of another
// layout (an older agent) are left out rather than misread.
func addBins(sum []float64, counts []int64) {
	if len(counts) != len(sum) {
		return
	}
	for i, c := range counts {
		sum[i] += float64(max(c, 0))
	}
}

// addCounts adds a site's bin counts into sum, like addBins.
func addCounts(sum, counts []int64) {
	if len(counts) != len(sum) {
		return
	}
	for i, c := range counts {
		sum[i] += max(c, 0)
	}
}

// siteEpoch is one site's share of Counters.Epochs: a sum of hashes, so
// the fingerprint does not depend on the order the sites are listed in.
func siteEpoch(site string, epoch int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(site))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(epoch, 10)))
	return h.Sum64()
}

func total(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

// addResiduals adds a site's regression sums to a total, leaving out a
// report no agent could have made (a negative count, a value that is not
// finite), so one site's bad report cannot poison the fleet's figure.
func addResiduals(total, r *modelfleet.Residuals) *modelfleet.Residuals {
	if r == nil || r.N <= 0 || r.SquaredError < 0 || r.TargetSquares < 0 ||
		!finite(r.SquaredError) || !finite(r.TargetSum) || !finite(r.TargetSquares) {
		return total
	}
	if total == nil {
		total = &modelfleet.Residuals{}
	}
	*total = total.Add(*r)
	return total
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
