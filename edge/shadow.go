package edge

import (
	"runtime"
	"sync"
	"time"
)

// DefaultShadowQueue is how many mirrored requests may wait for a shadow
// worker before further ones are dropped (and counted).
const DefaultShadowQueue = 1024

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
	return &shadowPool{workers: workers, queue: queue, done: make(chan struct{})}
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

// mirror queues a copy of a request the primary answered with label for
// every shadow of the route but the primary itself (a request pinned to a
// shadow). It reports whether a queued job kept the body: a shadow
// declaring other features than the primary decodes it itself.
func (r *Router) mirror(rt *route, primary *arm, row []float64, body []byte, label int) (keptBody bool) {
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
		select {
		case r.shadow.jobs <- j:
			keptBody = keptBody || j.body != nil
		default:
			s.m.dropped.Inc()
		}
	}
	return keptBody
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
	m.shadowLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		m.shadowErrors.Inc()
		r.log.Debug("edge: shadow score", "model", j.arm.Model.String(), "err", err)
		return
	}
	m.shadowOK.Inc()
	m.shadowPredictions.Observe(j.arm.shiftPoint(p))
	switch label := j.arm.labelOf(p); {
	case label < 0 || j.label < 0:
		// A regressor answers no class to agree on.
	case label == j.label:
		m.agree.Inc()
	default:
		m.disagree.Inc()
	}
}

// labelOf is the class a binary model's probability answers.
func labelOf(p float64) int {
	if p >= 0.5 {
		return 1
	}
	return 0
}
