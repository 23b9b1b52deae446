package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/modelfleet/modelfleet/inference"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// workload is what the benchmark sends: queue messages (batches of signal
// messages, and malformed bodies meant to be dead-lettered) and the counts
// they add up to.
type workload struct {
	base      *signals.Baseline
	queueMsgs []queue.Message
	signals   int // valid signal messages in queueMsgs
	malformed int // queue messages that must be dead-lettered
}

// newBaseline builds a baseline of features numerical features from
// synthetic training rows, with predictions, binned into bins.
func newBaseline(rng *rand.Rand, features, bins, rows int) (*signals.Baseline, error) {
	ds := &inference.Dataset{}
	for j := range features {
		ds.Features = append(ds.Features, fmt.Sprintf("f%02d", j))
	}
	preds := make([]float64, rows)
	for i := range rows {
		row := make([]float64, features)
		for j := range row {
			row[j] = float64(j) + (1+float64(j%5))*rng.NormFloat64()
		}
		ds.X = append(ds.X, row)
		ds.Y = append(ds.Y, 0)
		preds[i] = rng.Float64()
	}
	return signals.BuildBaseline(ds, bins, signals.WithPredictions(preds))
}

// templates are the histograms of windows of rows scored through a real
// Aggregator: some like the baseline, some shifted, so the monitor's
// verdicts include breaches.
func templates(rng *rand.Rand, base *signals.Baseline, n, rows int) []signals.Message {
	names := make([]string, len(base.Features))
	for j, f := range base.Features {
		names[j] = f.Name
	}
	agg := signals.NewAggregator(signals.AggregatorOptions{Site: "t"})
	out := make([]signals.Message, 0, n)
	row := make([]float64, len(names))
	for t := range n {
		agg.SetBaseline("m", fmt.Sprint(t), names, base)
		shift := 0.0
		if t%4 == 3 {
			shift = 0.5 // a quarter of the windows drift by half a standard deviation
		}
		for range rows {
			for j := range row {
				row[j] = float64(j) + (1+float64(j%5))*(rng.NormFloat64()+shift)
			}
			agg.Observe("m", fmt.Sprint(t), row, rng.Float64(), time.Duration(rng.IntN(2000))*time.Microsecond, nil)
		}
		msgs := agg.Flush(time.Now().Add(time.Hour))
		out = append(out, msgs...)
	}
	return out
}

// build renders count signal messages from sites sites, one per site and
// interval in turn, batched as the edge Sender batches a backlog (at most
// maxBatch messages and maxBytes per queue message), plus one malformed
// queue message every malformedEvery.
func build(base *signals.Baseline, tmpl []signals.Message, count, sites, maxBatch, maxBytes, malformedEvery int) (*workload, error) {
	w := &workload{base: base}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []json.RawMessage
	var ids []string
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		m := queue.Message{ID: ids[0], Body: batch[0], ContentType: signals.ContentType}
		if len(batch) > 1 {
			body, err := json.Marshal(struct {
				SchemaVersion string            `json:"schemaVersion"`
				Messages      []json.RawMessage `json:"messages"`
			}{signals.BatchSchemaVersion, batch})
			if err != nil {
				return err
			}
			m.ID, m.Body = signals.BatchID(ids), body
		}
		w.queueMsgs = append(w.queueMsgs, m)
		batch, ids, size = nil, nil, 0
		return nil
	}
	for i := range count {
		m := tmpl[i%len(tmpl)]
		m.Site, m.Model, m.Version = fmt.Sprintf("site-%04d", i%sites), "bench", "1"
		m.WindowStart = start.Add(time.Duration(i/sites) * time.Minute)
		m.WindowEnd = m.WindowStart.Add(time.Minute)
		m.MessageID = signals.MessageID(m.Site, m.Model, m.Version, m.WindowStart)
		body, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		if len(batch) == maxBatch || (len(batch) > 0 && size+len(body) > maxBytes) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		batch, ids, size = append(batch, body), append(ids, m.MessageID), size+len(body)
		w.signals++
		if malformedEvery > 0 && (i+1)%malformedEvery == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			bad := []string{`{"schemaVersion":"modelfleet.signal/v1","site":`, `{"schemaVersion":"modelfleet.signal/v9"}`}[w.malformed%2]
			w.queueMsgs = append(w.queueMsgs, queue.Message{ID: fmt.Sprintf("bad-%d", w.malformed), Body: []byte(bad)})
			w.malformed++
		}
	}
	return w, flush()
}
