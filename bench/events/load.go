package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// event is one delivery: a ModelRegistered event for one model version.
type event struct {
	id      string
	version int
}

// sender delivers one event and reports whether it was accepted.
type sender func(ctx context.Context, model string, ev event) error

// phase is one mode at one rate: what was sent, acknowledged and how fast.
type phase struct {
	mode      string // gateway or baseline
	rate      int
	model     string // unique per phase: its workflows are audited by it
	latencies []time.Duration
	errors    int
	acked     map[string]bool // workflow IDs whose start was accepted
	next      int             // next version
}

// run sends rate events per second for d, open loop (a slow answer does
// not delay the next send), a fraction redeliver of them redeliveries of
// an earlier event of the phase (same id and subject). It waits for every
// answer.
func (p *phase) run(ctx context.Context, d time.Duration, redeliver float64, send sender, rng *rand.Rand) {
	n := int(float64(p.rate) * d.Seconds())
	interval := time.Second / time.Duration(p.rate)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var sent []event
	start := time.Now()
	for i := range n {
		ev := event{}
		if len(sent) > 0 && rng.Float64() < redeliver {
			ev = sent[rng.IntN(len(sent))]
		} else {
			p.next++
			ev = event{id: fmt.Sprintf("%s-%d", p.model, p.next), version: p.next}
			sent = append(sent, ev)
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			t0 := time.Now()
			err := send(ctx, p.model, ev)
			lat := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				p.errors++
				return
			}
			p.latencies = append(p.latencies, lat)
			p.acked[workflowID(p.model, ev.version)] = true
		})
	}
	wg.Wait()
}

func workflowID(model string, version int) string {
	return fmt.Sprintf("release/%s/%d", model, version)
}

// quantile returns the q-quantile (nearest rank) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

type stats struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func summarize(ls []time.Duration) stats {
	s := slices.Clone(ls)
	slices.Sort(s)
	return stats{n: len(s), p50: quantile(s, 0.50), p90: quantile(s, 0.90), p99: quantile(s, 0.99), max: quantile(s, 1)}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
