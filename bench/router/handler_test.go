package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/edge"
)

// benchExample is the example the handler benchmarks serve: the bearing
// model, in each of its three formats (BENCH_EXAMPLE changes it).
func benchExample() string {
	return envString("BENCH_EXAMPLE", filepath.Join("..", "..", "examples", "bearing-failure"))
}

// modelFiles are the example's model files, one per built-in format.
var modelFiles = []struct{ format, file string }{
	{"lightgbm", "model.txt"},
	{"xgboost", "model.json"},
	{"onnx", "model.onnx"},
}

// BenchmarkHandler is the whole HTTP handler path of the servers bench-router
// and bench-runtime load, without the network: the router (an agent serving
// versions 1 and 2 at 90/10 with a shadow, an API key, sticky route keys,
// its metrics and the monitoring aggregator, exactly as -serve router
// builds it) and the floor, per model format. Besides ns/op, B/op and
// allocs/op it reports cpu-ns/op, the process CPU per request (user and
// system, garbage collection and the shadow's workers included), which is
// what p99 follows at 5,000 req/s on two cores:
//
//	go test -run '^$' -bench Handler -benchmem -count 6 ./bench/router/
func BenchmarkHandler(b *testing.B) {
	for _, mf := range modelFiles {
		for _, mode := range []string{"router", "floor"} {
			b.Run(mode+"/"+mf.format, func(b *testing.B) {
				h, sample := benchServer(b, mode, mf.file)
				headers := http.Header{"Content-Type": {"application/json"}}
				if mode == "router" {
					headers.Set("Authorization", "Bearer "+apiKey)
				}
				keys := make([]string, 1000)
				for i := range keys {
					keys[i] = fmt.Sprintf("machine-%d", i)
				}
				req, _ := http.NewRequest("POST", "http://bench/score/"+modelName, nil)
				req.Header = headers
				body := &rewindable{}
				w := &discard{h: http.Header{}}
				i := 0
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					if mode == "router" {
						headers[edge.HeaderRouteKey] = keys[i%len(keys) : i%len(keys)+1]
						i++
					}
					body.Reset(sample)
					req.Body, req.ContentLength = body, int64(len(sample))
					clear(w.h)
					w.code = 0
					h.ServeHTTP(w, req)
					if w.code != http.StatusOK {
						b.Fatalf("status %d", w.code)
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// benchServer is the handler of one -serve mode for the example's model
// file, and the example's sample request.
func benchServer(b testing.TB, mode, file string) (http.Handler, []byte) {
	ex, err := loadExample(benchExample(), file)
	if err != nil {
		b.Fatal(err)
	}
	var h http.Handler
	if mode == "floor" {
		h, err = floorHandler(ex)
	} else {
		h, err = agentHandler(ex, b.TempDir(), true)
	}
	if err != nil {
		b.Fatal(err)
	}
	return h, ex.sample
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rewindable is a request body read again from the start each request.
type rewindable struct{ bytes.Reader }

func (*rewindable) Close() error { return nil }

// discard is a ResponseWriter that keeps the status and drops the body.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header { return d.h }
func (d *discard) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	return len(p), nil
}
func (d *discard) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}

// Flush is a no-op, as net/http's response writer has one: the router
// flushes its answer before it scores a shadow inline.
func (d *discard) Flush() {}

// BenchmarkServe is BenchmarkHandler over loopback HTTP: a net/http server
// of the router or the floor and keep-alive clients in this process, so
// that what the network path adds (headers parsed and written, the
// goroutines woken) counts too. cpu-ns/op is the process's CPU per
// request, the clients' included: compare the router's with the floor's.
//
//	go test -run '^$' -bench Serve -benchmem -count 6 ./bench/router/
func BenchmarkServe(b *testing.B) {
	for _, mf := range modelFiles {
		for _, mode := range []string{"router", "floor"} {
			b.Run(mode+"/"+mf.format, func(b *testing.B) {
				h, sample := benchServer(b, mode, mf.file)
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				defer srv.Close()
				url := "http://" + ln.Addr().String() + "/score/" + modelName
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				var next atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(2)
				cpu := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("POST", url, bytes.NewReader(sample))
						req.Header.Set("Content-Type", "application/json")
						if mode == "router" {
							req.Header.Set("Authorization", "Bearer "+apiKey)
							req.Header.Set(edge.HeaderRouteKey, fmt.Sprintf("machine-%d", next.Add(1)%1000))
						}
						resp, err := client.Do(req)
						if err != nil {
							b.Fatal(err)
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Fatalf("status %d", resp.StatusCode)
						}
					}
				})
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

func TestPairedMedian(t *testing.T) {
	for _, tc := range []struct {
		a, b []float64
		want float64
	}{
		{[]float64{2, 3, 10}, []float64{1, 2, 1}, 2},       // ratios 2, 1.5, 10
		{[]float64{2, 3, 4, 12}, []float64{1, 2, 2, 1}, 2}, // 2, 1.5, 2, 12: (2+2)/2
		{[]float64{1, 1}, []float64{1}, 1},                 // a round without its pair is left out
	} {
		if got := median(roundRatios(tc.a, tc.b)); got != tc.want {
			t.Errorf("median(roundRatios(%v, %v)) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if got := median(roundRatios(nil, nil)); !math.IsNaN(got) {
		t.Errorf("no rounds: %v, want NaN", got)
	}
}

// summarise keeps the requests sent from skip after the first on, and
// ranks their latencies.
func TestSummariseSkipsTheWarmUp(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var all []result
	// A second of warm-up answered in 50 ms each, then 100 requests of
	// 1..100 ms, one 503 among them.
	for i := range 10 {
		all = append(all, result{Code: 200, Timestamp: t0.Add(time.Duration(i) * 100 * time.Millisecond), Latency: int64(50 * time.Millisecond)})
	}
	for i := range 100 {
		code := 200
		if i == 7 {
			code = 503
		}
		all = append(all, result{Code: code, Timestamp: t0.Add(time.Second + time.Duration(i)*10*time.Millisecond), Latency: int64(time.Duration(i+1) * time.Millisecond)})
	}
	r := summarise(all, time.Second)
	if r.requests != 100 || r.p50 != 50 || r.p99 != 99 || r.max != 100 {
		t.Fatalf("requests %d p50 %v p99 %v max %v, want 100, 50, 99, 100 (the warm-up left out)", r.requests, r.p50, r.p99, r.max)
	}
	if r.success != 0.99 || r.codes["503"] != 1 || r.codes["200"] != 99 {
		t.Fatalf("success %v codes %v", r.success, r.codes)
	}
	// 99 successes from 1 s to 1.99 s + 100 ms.
	if want := 99 / 1.09; math.Abs(r.throughput-want) > 1e-9 {
		t.Fatalf("throughput %v, want %v", r.throughput, want)
	}
	if r := summarise(nil, time.Second); r.requests != 0 || !math.IsNaN(r.p99) {
		t.Fatalf("no results: %+v", r)
	}
}
