package signals

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/edge"
)

// The router's hook takes an Aggregator as it is.
var _ edge.Observer = (*Aggregator)(nil)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func newTestAggregator(t testing.TB) (*Aggregator, *clock, *Baseline) {
	c := &clock{t: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
	a := NewAggregator(AggregatorOptions{Site: "plant-1", Interval: time.Minute, Now: c.now})
	b := bearingBaseline(t)
	a.SetBaseline("bearing-failure", "3", bearingFeatures, b)
	return a, c, b
}

var healthy = []float64{1.6, 0.42, 55.2, 1485, 62, 5200}

// TestAggregatorConcurrent observes from many goroutines at once (run with
// -race) and checks that every request lands in exactly one window.
func TestAggregatorConcurrent(t *testing.T) {
	a, c, _ := newTestAggregator(t)
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	var msgs []Message
	var mu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				switch {
				case i%100 == 99:
					a.Observe("bearing-failure", "3", nil, 0, time.Millisecond, modelfleet.Errorf(modelfleet.EINTERNAL, "boom"))
				case i%100 == 98:
					a.ObserveRejected("bearing-failure", "3", bearingFeatures, []byte(`{"features":{"vibration_rms_mm_s":null,"temperature_c":"hot"}}`), time.Millisecond)
				default:
					a.Observe("bearing-failure", "3", healthy, 0.02, time.Duration(w)*100*time.Microsecond, nil)
				}
				if w == 0 && i%500 == 0 { // flush while others observe
					m := a.Flush(c.add(time.Second))
					mu.Lock()
					msgs = append(msgs, m...)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	msgs = append(msgs, a.Flush(c.add(time.Second))...)

	var requests, scored, errs, rejected, nulls, typeErrs int64
	for i, m := range msgs {
		body, _ := json.Marshal(m)
		if _, err := Decode(body); err != nil {
			t.Fatalf("message %d does not decode: %v", i, err)
		}
		if i > 0 && !m.WindowStart.Equal(msgs[i-1].WindowEnd) {
			t.Errorf("message %d starts at %v, the previous ended at %v", i, m.WindowStart, msgs[i-1].WindowEnd)
		}
		requests, scored, errs, rejected = requests+m.Requests, scored+m.Scored, errs+m.Errors, rejected+m.Rejected
		nulls += m.Features[0].Nulls
		typeErrs += m.Features[2].TypeErrors
	}
	total := int64(workers * each)
	if requests != total || errs != total/50 || rejected != total/100 || scored != total-total/50 {
		t.Errorf("requests %d scored %d errors %d rejected %d, want %d %d %d %d", requests, scored, errs, rejected, total, total-total/50, total/50, total/100)
	}
	if nulls != total/100 || typeErrs != total/100 {
		t.Errorf("nulls %d, type errors %d, want %d each", nulls, typeErrs, total/100)
	}
}

func TestAggregatorMessage(t *testing.T) {
	a, c, b := newTestAggregator(t)
	start := c.now()
	a.Observe("bearing-failure", "3", healthy, 0.02, 300*time.Microsecond, nil)
	a.Observe("bearing-failure", "3", []float64{99, 0.42, 55.2, 1485, 62, 5200}, 0.97, 3*time.Millisecond, nil)
	a.Observe("bearing-failure", "3", nil, 0, 30*time.Millisecond, modelfleet.Errorf(modelfleet.EINTERNAL, "x"))
	a.ObserveRejected("bearing-failure", "3", bearingFeatures, []byte(`[1, 2]`), time.Millisecond)
	msgs := a.Flush(c.add(time.Minute))
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.MessageID != MessageID("plant-1", "bearing-failure", "3", start) || m.Baseline != b.Digest() {
		t.Errorf("id %q baseline %q", m.MessageID, m.Baseline)
	}
	if m.Requests != 4 || m.Scored != 2 || m.Errors != 2 || m.Rejected != 1 || m.ErrorCodes["internal"] != 1 || m.ErrorCodes["invalid"] != 1 {
		t.Errorf("counts: %+v", m)
	}
	if m.LatencyMs[2] != 1 || m.LatencyMs[5] != 1 || m.LatencyMs[8] != 1 || m.LatencyMs[3] != 1 {
		t.Errorf("latency buckets %v", m.LatencyMs)
	}
	vib := m.Features[0]
	if vib.Name != "vibration_rms_mm_s" || vib.Counts[len(vib.Counts)-1] != 1 || vib.AboveSum != 99 || math.Abs(vib.Sum-100.6) > 1e-9 {
		t.Errorf("vibration histogram %+v", vib)
	}
	// The range of the values seen, out-of-bounds ones included.
	if lo, hi, ok := vib.Range(); !ok || lo != 1.6 || hi != 99 {
		t.Errorf("vibration range %v–%v (%v), want 1.6–99", lo, hi, ok)
	}
	if lo, hi, ok := m.Prediction.Range(); !ok || lo != 0.02 || hi != 0.97 {
		t.Errorf("prediction range %v–%v (%v)", lo, hi, ok)
	}
	// A positional row of two numbers: the four missing features are nulls.
	if vib.Nulls != 0 || m.Features[2].Nulls != 1 || m.Features[5].Nulls != 1 {
		t.Errorf("nulls: %d %d %d", vib.Nulls, m.Features[2].Nulls, m.Features[5].Nulls)
	}
	if got := m.Prediction.Counts; got[1] != 1 || got[20] != 1 {
		t.Errorf("prediction counts %v", got)
	}
	// An idle window sends nothing, and the next window starts where this one ended.
	if msgs := a.Flush(c.add(time.Minute)); len(msgs) != 0 {
		t.Errorf("idle window sent %d messages", len(msgs))
	}
	a.Observe("bearing-failure", "3", healthy, 0.02, time.Millisecond, nil)
	next := a.Flush(c.add(time.Minute))
	if len(next) != 1 || !next[0].WindowStart.Equal(m.WindowEnd.Add(time.Minute)) {
		t.Errorf("next window %+v", next)
	}
	// Each window's range is its own.
	if lo, hi, _ := next[0].Features[0].Range(); lo != 1.6 || hi != 1.6 {
		t.Errorf("next window's vibration range %v–%v, want 1.6–1.6", lo, hi)
	}
	// A window whose requests all failed has no values, hence no range.
	a.Observe("bearing-failure", "3", nil, 0, time.Millisecond, modelfleet.Errorf(modelfleet.EINTERNAL, "x"))
	failed := a.Flush(c.add(time.Minute))
	if _, _, ok := failed[0].Features[0].Range(); ok || failed[0].Features[0].Min != nil {
		t.Errorf("a window without values has a range: %+v", failed[0].Features[0])
	}
	body, _ := json.Marshal(failed[0])
	if strings.Contains(string(body), `"min"`) {
		t.Errorf("an empty range is encoded: %s", body)
	}
}

func TestAggregatorWithoutBaseline(t *testing.T) {
	c := &clock{t: time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)}
	a := NewAggregator(AggregatorOptions{Site: "s", Now: c.now})
	a.Observe("m", "1", []float64{1, 2}, 0.5, time.Millisecond, nil)
	msgs := a.Flush(c.add(time.Minute))
	if len(msgs) != 1 || msgs[0].Baseline != "" || len(msgs[0].Features) != 0 || msgs[0].Scored != 1 {
		t.Fatalf("%+v", msgs)
	}
	body, _ := json.Marshal(msgs[0])
	if _, err := Decode(body); err != nil {
		t.Error(err)
	}
}

func TestAggregatorRunEmitsOnShutdown(t *testing.T) {
	var got []Message
	var mu sync.Mutex
	a := NewAggregator(AggregatorOptions{Site: "s", Interval: time.Hour, Emit: func(m Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		return nil
	}})
	a.Observe("m", "1", nil, 0.5, time.Millisecond, nil)
	a.Observe("m", "2", nil, 0.5, time.Millisecond, errors.New("x"))
	time.Sleep(2 * time.Millisecond) // a window must last at least a millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != "1" || got[1].ErrorCodes["internal"] != 1 {
		t.Errorf("emitted %+v", got)
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	a, _, _ := newTestAggregator(t)
	a.Observe("bearing-failure", "3", healthy, 0.02, time.Millisecond, nil)
	if n := testing.AllocsPerRun(1000, func() {
		a.Observe("bearing-failure", "3", healthy, 0.02, time.Millisecond, nil)
	}); n != 0 {
		t.Errorf("Observe allocates %v times per call", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	a, _, _ := newTestAggregator(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Observe("bearing-failure", "3", healthy, 0.02, time.Millisecond, nil)
		}
	})
}
