package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drift"
	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

type result struct {
	sendPerSec, queuePerSec, msgsPerSec float64
	cpuSeconds                          float64 // process CPU time while consuming
	evalP50us, evalP99us                float64
	breached                            int64
	lost                                int64
}

// cpuTime is the process's user and system CPU time so far: on a shared
// machine, the wall clock also measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// decodeOnly decodes every body on procs goroutines, over and over for at
// least a second, and returns signal messages decoded per second.
func decodeOnly(w *workload, procs int) (perSec, cpuUsPerMsg float64) {
	var decoded atomic.Int64
	start, cpu0 := time.Now(), cpuTime()
	for time.Since(start) < time.Second {
		var wg sync.WaitGroup
		for p := range procs {
			wg.Go(func() {
				for i := p; i < len(w.queueMsgs); i += procs {
					msgs, _ := signals.DecodeAny(w.queueMsgs[i].Body)
					decoded.Add(int64(len(msgs)))
				}
			})
		}
		wg.Wait()
	}
	n := float64(decoded.Load())
	return n / time.Since(start).Seconds(), float64((cpuTime() - cpu0).Microseconds()) / n
}

// monitorOnly decodes and evaluates every body with a fresh monitor on
// procs goroutines, without a queue: the monitor's own capacity.
func monitorOnly(w *workload, procs int) (perSec, cpuUsPerMsg float64, err error) {
	mon, err := drift.NewMonitor(drift.Options{
		Baselines: drift.Baselines{modelfleet.ModelRef{Name: "bench", Version: "1"}: w.base},
		Sink:      drift.SinkFunc(func(context.Context, drift.Verdict) error { return nil }),
	})
	if err != nil {
		return 0, 0, err
	}
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			for i := p; i < len(w.queueMsgs); i += procs {
				_ = mon.Process(context.Background(), w.queueMsgs[i].Body)
			}
		})
	}
	wg.Wait()
	n := float64(mon.Stats().Evaluated)
	return n / time.Since(start).Seconds(), float64((cpuTime() - cpu0).Microseconds()) / n, nil
}

// run sends the workload to a fresh embedded queue, then consumes it with
// a drift.Monitor until every queue message is settled.
func run(w *workload, path string, concurrency, prefetch int) (result, error) {
	var r result
	discard := slog.New(slog.DiscardHandler)
	q, err := queue.Open(path, queue.Options{Name: "signals", Logger: discard})
	if err != nil {
		return r, err
	}
	defer q.Close()
	ctx := context.Background()
	start := time.Now()
	for _, m := range w.queueMsgs {
		if err := q.Send(ctx, m); err != nil {
			return r, err
		}
	}
	r.sendPerSec = float64(len(w.queueMsgs)) / time.Since(start).Seconds()

	var mu sync.Mutex
	took := make([]time.Duration, 0, w.signals)
	var breached atomic.Int64
	mon, err := drift.NewMonitor(drift.Options{
		Baselines: drift.Baselines{modelfleet.ModelRef{Name: "bench", Version: "1"}: w.base},
		Sink:      drift.SinkFunc(func(context.Context, drift.Verdict) error { return nil }),
		OnEvaluated: func(v *drift.Verdict, d time.Duration) {
			if v.Breached() {
				breached.Add(1)
			}
			mu.Lock()
			took = append(took, d)
			mu.Unlock()
		},
	})
	if err != nil {
		return r, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start = time.Now()
	cpu0 := cpuTime()
	go func() {
		done <- queue.Consume(cctx, q, mon.Handle, queue.ConsumeOptions{Concurrency: concurrency, Prefetch: prefetch, Logger: discard})
	}()
	var st queue.Stats
	for {
		time.Sleep(10 * time.Millisecond)
		if st, err = q.Stats(); err != nil {
			cancel()
			return r, err
		}
		if st.Active == 0 && st.Completed+st.DeadLettered >= int64(len(w.queueMsgs)) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			cancel()
			return r, fmt.Errorf("not drained after 10 min: %+v", st)
		}
	}
	elapsed := time.Since(start)
	r.cpuSeconds = (cpuTime() - cpu0).Seconds()
	cancel()
	if err := <-done; err != nil {
		return r, err
	}
	ms := mon.Stats()
	r.queuePerSec = float64(len(w.queueMsgs)) / elapsed.Seconds()
	r.msgsPerSec = float64(ms.Evaluated) / elapsed.Seconds()
	r.lost = int64(w.signals+w.malformed) - ms.Evaluated - st.DeadLettered
	r.breached = breached.Load()
	slices.Sort(took)
	if len(took) > 0 {
		r.evalP50us = float64(took[len(took)/2].Microseconds())
		r.evalP99us = float64(took[min(len(took)-1, len(took)*99/100)].Nanoseconds()) / 1e3
	}
	return r, nil
}
