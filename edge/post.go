package edge

import (
	"net/http"
	"runtime"
	"sync"
	"time"
)

// What a scored request leaves to do once its answer is written — the
// monitoring observer's update and the scores of the route's shadows — is
// queued in the router's backlog and done postBatch requests at a time: on
// a goroutine of its own, started by the request that fills the backlog,
// or postDelay after the first queued request by a timer when traffic is
// too thin to fill it. Done one request at a time, the shadow's prediction
// and the observer's update each found the caches cold (the request's
// network path had run in between) and the observer's lock and counters on
// the other core; a batch walks the shadow's trees and bins the rows back
// to back. Measured under vegeta, two routers side by side on the same
// cores (the backlog's and the one-at-a-time), it is about 3 µs of CPU
// less per request. A batch is postBatch rows because a row's walk of a
// shadow's trees finds what the batch's earlier rows fetched: after a
// 64 MiB sweep of the caches (a machine whose neighbours thrash the shared
// cache), a 300-tree forest's walk cost 27–36 µs for one row, 9.3–9.8 µs a
// row in batches of 16 and 4.6–5.4 in batches of 64; after an 8 MiB sweep,
// 4.4–5.0 µs and 3.6–4.2 (forest's BenchmarkLeaves/forest-cold and
// cold*). The batch yields its processor every postYield rows, so that
// requests waiting for it are not held up by the whole batch. The requests
// pay for it with a delay of at most postDelay before they show in the
// shadows' metrics and the observer's windows (64 requests are 13 ms at
// 5,000 req/s).
//
// The batch runs on a goroutine of its own so that the filling request's
// connection is free for its client's next request: run on the request's
// own goroutine after its answer was flushed, it held the connection for
// the whole batch, and a client sending requests one after another on one
// connection (a line controller scoring part after part) waited for it on
// one request in postBatch. Starting the goroutine costs one wake-up per
// batch, not per request. One such goroutine runs at a time: a request
// that fills the backlog while the last batch still runs (post-work slower
// than the traffic) runs its own batch after flushing its answer, as
// before, so that a backlog that cannot keep up slows its clients instead
// of piling up goroutines.
const (
	postBatch = 64
	postYield = 16
	postDelay = 20 * time.Millisecond
)

// postJob is one scored request's remaining work.
type postJob struct {
	rt    *route
	arm   *arm      // the version that answered
	row   []float64 // its feature row, read-only from here on
	p     float64   // its prediction
	label int       // the label it answered (-1: a regressor)
	took  time.Duration
	// body is the request body (in its pooled buffer buf), kept only when
	// a shadow of the route declares other features than arm and decodes
	// it itself.
	buf  *[]byte
	body []byte
}

// backlog is the router's queue of postJobs.
type backlog struct {
	delay time.Duration // postDelay; tests lengthen it
	run   func([]postJob)

	mu      sync.Mutex
	jobs    []postJob
	spare   []postJob // a batch's slice, back from run, for the next batch
	timer   *time.Timer
	running bool           // a handed-off batch runs
	stopped bool           // stop was called: no more hand-offs
	wg      sync.WaitGroup // the handed-off batch
}

func newBacklog(run func([]postJob)) *backlog {
	b := &backlog{delay: postDelay, run: run}
	b.timer = time.AfterFunc(time.Hour, b.runQueued)
	b.timer.Stop()
	return b
}

// add queues j. When that fills the backlog it returns the batch, for the
// caller to run and then give back with done; else nil.
func (b *backlog) add(j postJob) []postJob {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.jobs == nil {
		b.jobs, b.spare = b.spare, nil
		if b.jobs == nil {
			b.jobs = make([]postJob, 0, postBatch)
		}
	}
	b.jobs = append(b.jobs, j)
	switch len(b.jobs) {
	case postBatch:
		batch := b.jobs
		b.jobs = nil
		return batch
	case 1:
		// The timer may fire for a batch a request has already taken:
		// it then finds the backlog empty, or runs a younger one early.
		b.timer.Reset(b.delay)
	}
	return nil
}

// handOff starts a goroutine that runs batch and gives it back, and
// reports true; or false, when a handed-off batch still runs or the
// backlog is stopped: the caller then runs batch itself.
func (b *backlog) handOff(batch []postJob) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running || b.stopped {
		return false
	}
	b.running = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run(batch)
		b.done(batch)
		b.mu.Lock()
		b.running = false
		b.mu.Unlock()
	}()
	return true
}

// done gives back the slice of a batch that has run.
func (b *backlog) done(batch []postJob) {
	clear(batch) // the rows and bodies go to the collector
	b.mu.Lock()
	b.spare = batch[:0]
	b.mu.Unlock()
}

// runQueued runs whatever is queued now.
func (b *backlog) runQueued() {
	b.mu.Lock()
	batch := b.jobs
	b.jobs = nil
	b.mu.Unlock()
	if len(batch) > 0 {
		b.run(batch)
		b.done(batch)
	}
}

// stop waits for the handed-off batch, runs what is queued and stops the
// timer.
func (b *backlog) stop() {
	b.timer.Stop()
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.wg.Wait()
	b.runQueued()
}

// queuePost queues a scored request's observer update and shadow scores,
// and hands the batch off if it filled the backlog, or runs it itself
// after flushing w (the client has its answer first) when the last batch
// still runs. It reports whether the backlog kept the request body's
// buffer.
func (r *Router) queuePost(w http.ResponseWriter, rt *route, a *arm, row []float64, p float64, label int, took time.Duration, buf *[]byte, body []byte) (keptBody bool) {
	if len(rt.shadows) == 0 && r.observer.Load() == nil {
		return false
	}
	j := postJob{rt: rt, arm: a, row: row, p: p, label: label, took: took}
	if a.mirrorsBody {
		j.buf, j.body, keptBody = buf, body, true
	}
	if batch := r.post.add(j); batch != nil && !r.post.handOff(batch) {
		flush(w)
		r.runPost(batch)
		r.post.done(batch)
	}
	return keptBody
}

// runPost does the queued work of a batch, request by request in the order
// they were queued: the observer's update, then the shadows' scores.
func (r *Router) runPost(batch []postJob) {
	o := r.loadObserver()
	for i := range batch {
		if i > 0 && i%postYield == 0 {
			runtime.Gosched()
		}
		j := &batch[i]
		if o != nil {
			o.Observe(j.arm.Model.Name, j.arm.Model.Version, j.row, j.p, j.took, nil)
		}
		kept := false
		if len(j.rt.shadows) > 0 {
			kept = r.mirror(nil, j.rt, j.arm, j.row, j.body, j.label) // the answer is sent
		}
		if j.buf != nil && !kept {
			putBody(j.buf, j.body)
		}
	}
}
