// Command events benchmarks the Event Grid webhook: sustained ModelRegistered
// load on loopback against the real gateway handler and Temporal dispatcher
// backed by a real Temporal dev server, measuring POST → 200 (Temporal
// accepted the start), against a baseline of the same starts made directly
// with the Temporal client, in the same run, at the same rates. A fraction
// of events are redeliveries (same id and subject). Afterwards it audits
// Temporal: duplicates (executions beyond one per subject) and lost
// (acknowledged subjects without a workflow).
//
// The last line is machine-readable, for the highest rate:
//
//	bench=events rate=<ev/s> p50_ms=<> p99_ms=<> baseline_p99_ms=<> overhead_ratio=<> duplicates=<> lost=<>
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/orchestrator"
)

func main() {
	rates := flag.String("rates", "50,100,200", "comma-separated rates, events per second")
	dur := flag.Duration("duration", 10*time.Second, "load per rate and mode")
	segments := flag.Int("segments", 10, "alternate baseline and gateway this many times per rate: drift in the machine's load hits both alike")
	redeliver := flag.Float64("redeliver", 0.10, "fraction of events that are redeliveries")
	bin := flag.String("temporal", "bin/tools/temporal", "Temporal CLI binary")
	withWorker := flag.Bool("worker", true, `run a worker whose trivial "Release" completes at once`)
	memory := flag.Bool("memory-db", false, "in-memory SQLite instead of a file in a temp dir")
	flag.Parse()
	if err := run(*rates, *dur, *segments, *redeliver, *bin, *withWorker, *memory); err != nil {
		fmt.Fprintln(os.Stderr, "bench-events:", err)
		os.Exit(1)
	}
}

func run(rateList string, dur time.Duration, segments int, redeliver float64, bin string, withWorker, memory bool) error {
	var rates []int
	for _, s := range strings.Split(rateList, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			return fmt.Errorf("rate %q is not a positive integer", s)
		}
		rates = append(rates, r)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-events-")
	if err != nil {
		return err
	}
	defer func() {
		if os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}()
	srv, err := startDevServer(ctx, bin, dir, memory)
	if err != nil {
		return err
	}
	defer srv.stop()
	db := "sqlite file in " + dir + ", wal"
	if memory {
		db = "in-memory sqlite"
	}
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d, load %s; temporal dev server %s (%s), worker %v\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg(), srv.addr, db, withWorker)

	// The client the gateway uses in production: tracing interceptor on.
	tracing, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{})
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := client.DialContext(ctx, client.Options{HostPort: srv.addr, Interceptors: []interceptor.ClientInterceptor{tracing},
		Logger: tlog.NewStructuredLogger(quiet)})
	if err != nil {
		return err
	}
	defer c.Close()
	if withWorker {
		w := worker.New(c, modelfleet.CloudTaskQueue, worker.Options{})
		w.RegisterWorkflowWithOptions(func(workflow.Context, modelfleet.ReleaseInput) error { return nil },
			workflow.RegisterOptions{Name: modelfleet.ReleaseWorkflowName})
		if err := w.Start(); err != nil {
			return err
		}
		defer w.Stop()
	}

	o := orchestrator.New(c)
	h := events.NewHandler(events.NewTemporalDispatcher(o, quiet, nil), events.HandlerOptions{Logger: quiet})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}, Timeout: time.Minute}
	url := "http://" + l.Addr().String() + "/api/events"
	send := map[string]sender{
		"gateway":  func(ctx context.Context, model string, ev event) error { return post(ctx, hc, url, model, ev) },
		"baseline": func(ctx context.Context, model string, ev event) error { return start(ctx, o, model, ev) },
	}

	runID := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	rng := rand.New(rand.NewPCG(1, 2))
	// Warm both paths (connections, caches) before measuring.
	for _, mode := range []string{"baseline", "gateway"} {
		w := &phase{mode: mode, rate: 50, model: "bench-" + runID + "-warm-" + mode, acked: map[string]bool{}}
		w.run(ctx, 2*time.Second, redeliver, send[mode], rng)
	}
	type result struct {
		gw, base                   stats
		dupGW, lostGW, dupB, lostB int
		errGW, errB                int
	}
	var last result
	for _, rate := range rates {
		ph := map[string]*phase{}
		for _, mode := range []string{"baseline", "gateway"} {
			ph[mode] = &phase{mode: mode, rate: rate, model: fmt.Sprintf("bench-%s-%s-r%d", runID, mode, rate), acked: map[string]bool{}}
		}
		for seg := range segments {
			order := []string{"baseline", "gateway"}
			if seg%2 == 1 {
				order = []string{"gateway", "baseline"}
			}
			for _, mode := range order {
				ph[mode].run(ctx, dur/time.Duration(segments), redeliver, send[mode], rng)
			}
		}
		var res result
		res.gw, res.base = summarize(ph["gateway"].latencies), summarize(ph["baseline"].latencies)
		res.errGW, res.errB = ph["gateway"].errors, ph["baseline"].errors
		if res.dupGW, res.lostGW, err = audit(ctx, c, ph["gateway"].model, ph["gateway"].acked); err != nil {
			return err
		}
		if res.dupB, res.lostB, err = audit(ctx, c, ph["baseline"].model, ph["baseline"].acked); err != nil {
			return err
		}
		for _, m := range []struct {
			mode      string
			s         stats
			errs, dup int
			lost      int
			subjects  int
		}{
			{"baseline", res.base, res.errB, res.dupB, res.lostB, len(ph["baseline"].acked)},
			{"gateway", res.gw, res.errGW, res.dupGW, res.lostGW, len(ph["gateway"].acked)},
		} {
			fmt.Printf("rate=%d mode=%-8s sent_ok=%d errors=%d subjects=%d p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s duplicates=%d lost=%d\n",
				rate, m.mode, m.s.n, m.errs, m.subjects, ms(m.s.p50), ms(m.s.p90), ms(m.s.p99), ms(m.s.max), m.dup, m.lost)
		}
		last = res
	}
	top := rates[len(rates)-1]
	ratio := 0.0
	if last.base.p99 > 0 {
		ratio = float64(last.gw.p99) / float64(last.base.p99)
	}
	fmt.Printf("bench=events rate=%d p50_ms=%s p99_ms=%s baseline_p99_ms=%s overhead_ratio=%.2f duplicates=%d lost=%d\n",
		top, ms(last.gw.p50), ms(last.gw.p99), ms(last.base.p99), ratio, last.dupGW, last.lostGW)
	return nil
}

// post delivers one event as Event Grid does: Event Grid schema, an array
// of one, aeg-event-type Notification. Only 200 is acceptance.
func post(ctx context.Context, hc *http.Client, url, model string, ev event) error {
	body := fmt.Sprintf(`[{"id":%q,"topic":"/subscriptions/bench/resourceGroups/bench/providers/Microsoft.MachineLearningServices/workspaces/bench",`+
		`"eventType":%q,"subject":"models/%s:%d","eventTime":%q,"data":{"modelName":%q,"modelVersion":"%d"},"dataVersion":"2","metadataVersion":"1"}]`,
		ev.id, modelfleet.EventModelRegistered, model, ev.version, time.Now().UTC().Format(time.RFC3339Nano), model, ev.version)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("aeg-event-type", "Notification")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// start is the baseline: the start the dispatcher makes for a
// ModelRegistered event (events.TemporalDispatcher.startRelease), made
// directly through the same orchestrator, without the gateway.
func start(ctx context.Context, o modelfleet.Orchestrator, model string, ev event) error {
	ref := modelfleet.ModelRef{Name: model, Version: strconv.Itoa(ev.version)}
	_, err := o.StartRelease(ctx, modelfleet.ReleaseInput{Model: ref, EventID: ev.id})
	if modelfleet.ErrorCode(err) == modelfleet.ECONFLICT {
		return nil
	}
	return err
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
