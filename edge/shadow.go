package edge

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultShadowQueue is how many mirrored requests may wait for a shadow
// worker before further ones are dropped (and counted).
const DefaultShadowQueue = 1024

// A shadow version built into the agent whose last shadowInlineStreak
// scores each took at most shadowInlineBudget is scored inline: on the
// goroutine running the backlog's batch (post.go: the one the request that
// filled it started, that request itself when a batch still runs, or the
// backlog's timer). Handing a request to a worker costs a wake-up of a
// parked goroutine (often of an idle thread, a futex call each way) per
// request, which on a small edge box is more CPU than scoring a tree
// ensemble and shows in the primary's tail latency; scored inline, a cheap
// shadow costs one wake-up per batch. At most as many goroutines as the
// pool has workers score inline at once, and one slower score sends the
// version back to the pool until it is cheap again, so a slow shadow never
// holds a batch, or the connection of a request running one, for long. An external server's
// shadow always goes to the pool: a call over the network is never cheap
// enough.
const (
	shadowInlineBudget = 200 * time.Microsecond
	shadowInlineStreak = 8
)

// shadowJob is one mirrored request for one shadow version.
type shadowJob struct {
	arm   *arm
	row   []float64 // the primary's feature row, when the shadow declares the same features
	body  []byte    // else the request body, to decode (the job's own: its buffer is not reused)
	label int       // what the primary answered
}

// shadowPool scores mirrored requests off the request path. The queue is
// bounded and a request finding it full is dropped, so a slow or stuck
// shadow costs the primary one non-blocking channel send, never a wait.
// The queue and the workers only exist from the first shadow on: a process
// may run thousands of agents (a fleet simulation) that never have one. They
// stop on close.
type shadowPool struct {
	workers, queue int
	inlineBudget   time.Duration  // shadowInlineBudget; tests lengthen it
	inline         atomic.Int32   // requests scoring a shadow inline now, at most workers
	jobs           chan shadowJob // nil until run
	done           chan struct{}
	start          sync.Once
	stop           sync.Once
	wg             sync.WaitGroup
}

// newShadowPool sizes a pool; 0 means GOMAXPROCS workers and
// DefaultShadowQueue.
func newShadowPool(workers, queue int) *shadowPool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if queue <= 0 {
		queue = DefaultShadowQueue
	}
	return &shadowPool{workers: workers, queue: queue, inlineBudget: shadowInlineBudget, done: make(chan struct{})}
}

// run starts the pool once. The caller publishes the first route with a
// shadow after it returns, which is what makes jobs visible to the request
// path (mirror only runs for routes with shadows).
func (p *shadowPool) run(score func(shadowJob)) {
	p.start.Do(func() {
		p.jobs = make(chan shadowJob, p.queue)
		for range p.workers {
			p.wg.Go(func() {
				for {
					select {
					case <-p.done:
						return
					case j := <-p.jobs:
						score(j)
					}
				}
			})
		}
	})
}

func (p *shadowPool) close() {
	p.stop.Do(func() { close(p.done) })
	p.wg.Wait()
}

// mirror scores a copy of a request the primary answered with label on
// every shadow of the route but the primary itself (a request pinned to a
// shadow): inline, after flushing the answer to w (nil: it is sent), for a
// shadow that has been cheap (see shadowInlineBudget), else through the
// pool's queue. It reports whether a queued job kept the body: a shadow
// declaring other features than the primary decodes it itself.
func (r *Router) mirror(w http.ResponseWriter, rt *route, primary *arm, row []float64, body []byte, label int) (keptBody bool) {
	flushed := false
	for _, s := range rt.shadows {
		if s == primary {
			continue
		}
		j := shadowJob{arm: s, label: label}
		if s.rows == primary.rows {
			j.row = row // read-only from here on, on both sides
		} else {
			j.body = body
		}
		if s.Server == nil && s.shadowStreak.Load() >= shadowInlineStreak {
			if n := r.shadow.inline.Add(1); int(n) <= r.shadow.workers {
				if !flushed && w != nil {
					flushed = true
					flush(w)
				}
				r.runShadow(j)
				r.shadow.inline.Add(-1)
				continue
			}
			r.shadow.inline.Add(-1)
		}
		select {
		case r.shadow.jobs <- j:
			keptBody = keptBody || j.body != nil
		default:
			s.m.dropped.Inc()
		}
	}
	return keptBody
}

// flush sends what w holds to the client now, when it can.
func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// runShadow scores one mirrored request and measures it; the answer goes
// nowhere else.
func (r *Router) runShadow(j shadowJob) {
	start := time.Now()
	m := &j.arm.m
	row, err := j.row, error(nil)
	if row == nil {
		row, err = r.vectorize(j.arm.Features, j.body)
	}
	var p float64
	if err == nil {
		p, _, err = r.predict(j.arm, row)
	}
	took := time.Since(start)
	m.shadowLatency.Observe(took.Seconds())
	if took <= r.shadow.inlineBudget && j.arm.Server == nil {
		if n := j.arm.shadowStreak.Load(); n < shadowInlineStreak {
			j.arm.shadowStreak.Store(n + 1)
		}
	} else {
		j.arm.shadowStreak.Store(0)
	}
	if err != nil {
		m.shadowErrors.Inc()
		r.log.Debug("edge: shadow score", "model", j.arm.Model.String(), "err", err)
		return
	}
	m.shadowPredictions.Observe(j.arm.shiftPoint(p))
	switch label := j.arm.labelOf(p); {
	case label < 0 || j.label < 0:
		// A regressor answers no class to agree on.
	case label == j.label:
		m.agree.Inc()
	default:
		m.disagree.Inc()
	}
	// Last: whoever sees a score counted sees everything else it counts.
	m.shadowOK.Inc()
}

// labelOf is the class a binary model's probability answers.
func labelOf(p float64) int {
	if p >= 0.5 {
		return 1
	}
	return 0
}
