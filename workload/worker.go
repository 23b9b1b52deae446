package workload

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/paho"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// Score call policy: a few quick retries for a router that blips, none once
// it has failed repeatedly, so a router outage dead-letters fast instead of
// backing the stream up.
const (
	scoreAttempts  = 3
	scoreTimeout   = 2 * time.Second
	failFastAfter  = 5
	publishTimeout = 10 * time.Second
)

var scoreBackoff = [scoreAttempts]time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond}

// worker owns the machines whose topics hash to it: their preparers are
// used by this goroutine only.
type worker struct {
	r        *Runtime
	id       int
	code     code // nil after a module fault, until the next message
	machines map[string]bool
	row      []float64
}

// handle takes one message to exactly one outcome (a decision or a dead
// letter) and acknowledges it only once that outcome is on the broker. A
// message whose outcome could not be published stays unacknowledged and
// comes back on the session.
func (w *worker) handle(j job) {
	r := w.r
	r.lastMessage.Store(j.received.UnixNano())
	var published bool
	defer func() {
		if v := recover(); v != nil { // a bug here must not stop the stream
			r.log.Error("workload: message handler panicked", "panic", fmt.Sprint(v))
			published = w.deadLetter(j, &Reject{Reason: ReasonPrepare, Message: fmt.Sprintf("workload panicked: %v", v)})
		}
		if published {
			if err := j.client.Ack(j.pub); err != nil && !errors.Is(err, paho.ErrPacketNotFound) {
				r.log.Debug("workload: ack", "error", err)
			}
			r.processed.Add(1)
			r.m.process.Observe(time.Since(j.received).Seconds())
		}
	}()
	published = w.process(j)
}

func (w *worker) process(j job) bool {
	r, man := w.r, &w.r.prog.Manifest
	s, rj := ParseSample(&man.Input, j.pub.Topic, j.pub.Payload, r.cfg.Now())
	if rj != nil {
		return w.deadLetter(j, rj)
	}
	if !w.machines[s.Machine] {
		if r.machines.Load() >= maxMachines {
			return w.deadLetter(j, reject(ReasonBadField, "more than %d machines: machine %q is not tracked", maxMachines, s.Machine))
		}
		w.machines[s.Machine] = true
		r.machines.Add(1)
	}
	if w.code == nil {
		c, err := r.newCode(r.ctx)
		if err != nil {
			return w.deadLetter(j, w.fault(err))
		}
		w.code = c
	}
	ready, err := w.code.prepare(s, w.row)
	if err != nil {
		return w.deadLetter(j, w.fault(err))
	}
	d := Decision{Site: r.cfg.Site, Workload: man.Name, WorkloadVersion: man.Version, Model: man.Model,
		Machine: s.Machine, SampleTime: s.Time}
	if s.HasSeq {
		d.Seq = &s.Seq
	}
	if !ready {
		d.Action, d.DecidedAt = ActionWarming, r.cfg.Now()
		if !w.publish(man.Output.Decisions, d) {
			return false
		}
		r.m.warming.Inc()
		r.cfg.Record.Add(d)
		return true
	}
	d.Features = make(map[string]float64, len(w.row))
	for i, f := range man.Features {
		v := w.row[i]
		if math.IsNaN(v) || math.IsInf(v, 0) || (f.Min != nil && v < *f.Min) || (f.Max != nil && v > *f.Max) {
			return w.deadLetter(j, reject(ReasonFeatureRange, "feature %q = %v is outside %s", f.Name, v, rangeString(f.Min, f.Max, f.Unit)))
		}
		if !f.Holds(v) {
			return w.deadLetter(j, reject(ReasonFeatureRange, "feature %q = %v is not a %s value", f.Name, v, f.Type))
		}
		d.Features[f.Name] = v
	}
	pred, err := w.score(s.Machine)
	if err != nil {
		reason := ReasonScoreFailed
		var se *ScoreError
		if errors.As(err, &se) && se.Permanent {
			reason = ReasonScoreRejected
		}
		return w.deadLetter(j, reject(reason, "%v", err))
	}
	action, err := w.code.decide(pred, s.Machine)
	if err != nil {
		return w.deadLetter(j, w.fault(err))
	}
	d.ModelVersion, d.Prediction, d.Label = pred.Version, &pred.Value, &pred.Label
	d.Action, d.DecidedAt = action, r.cfg.Now()
	if !w.publish(man.Output.Decisions, d) {
		return false
	}
	r.m.decided.Inc()
	r.m.action(d.Action)
	r.cfg.Record.Add(d)
	return true
}

func (w *worker) score(machine string) (Prediction, error) {
	r, man := w.r, &w.r.prog.Manifest
	start := time.Now()
	defer func() { r.m.score.Observe(time.Since(start).Seconds()) }()
	attempts := scoreAttempts
	if r.failing.Load() >= failFastAfter {
		attempts = 1
	}
	var err error
	for i := range attempts {
		if i > 0 {
			time.Sleep(scoreBackoff[i])
		}
		ctx, cancel := context.WithTimeout(r.ctx, scoreTimeout)
		var p Prediction
		p, err = r.cfg.Scorer.Score(ctx, man.Model, machine, man.FeatureNames(), w.row)
		cancel()
		if err == nil {
			r.failing.Store(0)
			return p, nil
		}
		var se *ScoreError
		if errors.As(err, &se) && se.Permanent {
			return p, err
		}
	}
	r.failing.Add(1)
	return Prediction{}, err
}

// fault is the dead-letter reason for an error of the workload's code. A
// module fault also drops the instance (the next message gets a fresh one)
// and marks the runtime unhealthy for a while.
func (w *worker) fault(err error) *Reject {
	var f *ModuleFault
	if !errors.As(err, &f) {
		return reject(ReasonPrepare, "%v", err)
	}
	if w.code != nil {
		w.code.close()
		w.code = nil
		// The instance held this worker's machines' windows: they fill again.
		w.r.machines.Add(-int64(len(w.machines)))
		clear(w.machines)
	}
	w.r.recordFault(f)
	return reject(f.Reason, "%s", f.Message)
}

// deadLetter publishes the message with the reason it was refused.
func (w *worker) deadLetter(j job, rj *Reject) bool {
	r := w.r
	dl := DeadLetter{Site: r.cfg.Site, Workload: r.prog.Manifest.Name, WorkloadVersion: r.prog.Manifest.Version,
		Reason: rj.Reason, Message: rj.Message, Topic: j.pub.Topic, At: r.cfg.Now()}
	if utf8.Valid(j.pub.Payload) {
		dl.Payload = string(j.pub.Payload)
	} else {
		dl.Payload, dl.PayloadEncoding = base64.StdEncoding.EncodeToString(j.pub.Payload), "base64"
	}
	if !w.publish(r.prog.Manifest.Output.DeadLetter, dl) {
		return false
	}
	r.deadLetters.Add(1)
	r.m.deadLetter(rj.Reason)
	r.log.Debug("workload: dead-lettered", "reason", rj.Reason, "message", rj.Message, "topic", j.pub.Topic)
	return true
}

// publish sends v at QoS 1 and waits for the broker's acknowledgement,
// retrying until it gets one or the runtime is closed: acknowledgements go
// out in order, so giving up on one output would hold back every later
// acknowledgement on the connection. While the connection is down the
// broker will redeliver the input anyway; the output may then appear twice
// (at least once, never lost).
func (w *worker) publish(topic string, v any) bool {
	r := w.r
	payload, err := json.Marshal(v)
	if err != nil {
		r.log.Error("workload: encoding an output", "error", err)
		return false
	}
	p := &paho.Publish{Topic: spec.Topic(topic, r.cfg.Site), QoS: 1, Payload: payload}
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		ctx, cancel := context.WithTimeout(r.ctx, publishTimeout)
		_, err := r.out.Publish(ctx, p)
		cancel()
		if err == nil {
			return true
		}
		r.log.Warn("workload: publishing an output failed; retrying", "topic", p.Topic, "error", err)
		select {
		case <-r.ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}
