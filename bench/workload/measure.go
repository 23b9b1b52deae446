package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/modelfleet/modelfleet/simulate"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

type key struct {
	machine string
	seq     int64
}

// result is one path's figures.
type result struct {
	rate               float64
	sent, got          int
	p50, p99, max      float64 // ms
	lost, deadLettered int
	reasons            map[string]int // dead letters by reason
}

func (r result) print(name string) {
	fmt.Printf("  %-26s sent %d at %.0f/s, outcomes %d, p50 %.2f ms, p99 %.2f ms, max %.2f ms, lost %d, dead-lettered %d %v\n",
		name, r.sent, r.rate, r.got, r.p50, r.p99, r.max, r.lost, r.deadLettered, r.reasons)
}

// measure runs the workload for site with scorer, drives it with the
// simulator for warmup+duration, and matches every reading sent during
// the measured part with its outcome (decision or dead letter).
func (e *env) measure(c config, site string, scorer workload.Scorer, prog workload.Program) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.workers > 0 {
		prog.Manifest.Scaling.Workers = c.workers
	}
	rt, err := workload.New(workload.Config{Site: site, Program: prog, Broker: e.broker.URL(), Scorer: scorer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return result{}, err
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	err = rt.Start(sctx)
	scancel()
	if err != nil {
		return result{}, err
	}
	defer rt.Close()

	var mu sync.Mutex
	sent := map[key]time.Time{}
	got := map[key]time.Time{}
	dead := map[key]string{}
	var measuring atomic.Bool
	stop, err := subscribe(ctx, e.broker.URL(), site, prog.Manifest, func(k key, at time.Time, reason string) {
		mu.Lock()
		if _, dup := got[k]; !dup {
			got[k] = at
			dead[k] = reason
		}
		mu.Unlock()
	})
	if err != nil {
		return result{}, err
	}
	defer stop()

	line, err := simulate.New(simulate.Config{Site: site, Broker: e.broker.URL(), Machines: c.machines, Rate: c.rate, Seed: 42,
		OnPublish: func(r *simulate.Reading, at time.Time) {
			if measuring.Load() {
				mu.Lock()
				sent[key{r.Machine, r.Seq}] = at
				mu.Unlock()
			}
		}})
	if err != nil {
		return result{}, err
	}
	lctx, lcancel := context.WithCancel(ctx)
	lineDone := make(chan error, 1)
	go func() { lineDone <- line.Run(lctx) }()
	time.Sleep(c.warmup)
	measuring.Store(true)
	begin := time.Now()
	time.Sleep(c.duration)
	measuring.Store(false)
	elapsed := time.Since(begin)
	lcancel()
	if err := <-lineDone; err != nil {
		return result{}, err
	}
	// Wait for the stragglers while they keep coming (a loaded machine
	// may leave a backlog), then match: lost is what never arrived.
	last, lastChange := -1, time.Now()
	for {
		mu.Lock()
		missing := 0
		for k := range sent {
			if _, ok := got[k]; !ok {
				missing++
			}
		}
		mu.Unlock()
		if missing != last {
			last, lastChange = missing, time.Now()
		}
		if missing == 0 || time.Since(lastChange) > c.drain {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	res := result{sent: len(sent), rate: float64(len(sent)) / elapsed.Seconds()}
	var lat []float64
	for k, t0 := range sent {
		t1, ok := got[k]
		if !ok {
			res.lost++
			continue
		}
		res.got++
		if r := dead[k]; r != "" {
			res.deadLettered++
			if res.reasons == nil {
				res.reasons = map[string]int{}
			}
			res.reasons[r]++
		}
		lat = append(lat, float64(t1.Sub(t0))/float64(time.Millisecond))
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50, res.p99, res.max = quantile(lat, 0.50), quantile(lat, 0.99), lat[len(lat)-1]
	}
	return res, nil
}

func quantile(sorted []float64, q float64) float64 {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// subscribe receives the site's decisions and dead letters (QoS 1) and
// reports each with its arrival time.
func subscribe(ctx context.Context, broker, site string, m spec.Manifest, on func(k key, at time.Time, deadReason string)) (func(), error) {
	u, _ := url.Parse(broker)
	decisions, dead := spec.Topic(m.Output.Decisions, site), spec.Topic(m.Output.DeadLetter, site)
	ready := make(chan struct{})
	var once sync.Once
	cctx, cancel := context.WithCancel(ctx)
	cm, err := autopaho.NewConnection(cctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 20, CleanStartOnInitialConnection: true,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				_, err := cm.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: decisions, QoS: 1}, {Topic: dead, QoS: 1}}})
				if err == nil {
					once.Do(func() { close(ready) })
				}
			}()
		},
		ClientConfig: paho.ClientConfig{ClientID: "bench-consumer-" + site,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				at := time.Now()
				var msg struct {
					Machine string `json:"machine"`
					Seq     *int64 `json:"seq"`
					Payload string `json:"payload"`
					Reason  string `json:"reason"`
				}
				if json.Unmarshal(pr.Packet.Payload, &msg) != nil {
					return true, nil
				}
				reason := ""
				if pr.Packet.Topic == dead { // the reading is inside the dead letter
					reason = msg.Reason
					_ = json.Unmarshal([]byte(msg.Payload), &msg)
				}
				if msg.Seq != nil {
					on(key{msg.Machine, *msg.Seq}, at, reason)
				}
				return true, nil
			}}},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		cancel()
		return nil, fmt.Errorf("consumer did not subscribe to %s", decisions)
	}
	return func() { cancel(); <-cm.Done() }, nil
}
