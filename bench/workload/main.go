// Command workload benchmarks the edge workload path (make bench-workload):
// a sensor reading published by the factory-line simulator → the embedded
// MQTT broker → the bearing-failure workload (window, units, features) → the
// site's real inference router over HTTP (an edge agent built as the dev
// stack builds it, with the example model deployed and an API key) → the
// decision published back through the broker → received by a subscriber.
//
// In the same run it measures the floor: the same path with the model call
// replaced by a direct in-process call of the same model; and the e2e path
// with the workload's code as the WebAssembly module built from
// examples/bearing-failure/workload/module (run by wazero, as a site runs
// it) instead of the built-in reference code. Everything shares
// one process and the machine's cores (loopback only), so the figures
// compare the two paths; they are not a plant's capacity. It prints human
// lines, then one line for machines:
//
//	bench=workload rate= e2e_p50_ms= e2e_p99_ms= floor_p99_ms= wasm_e2e_p99_ms= ref_e2e_p99_ms= wasm_ratio= lost= dead_lettered=
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	bearing "github.com/modelfleet/modelfleet/examples/bearing-failure/workload"
	"github.com/modelfleet/modelfleet/workload"
	"github.com/modelfleet/modelfleet/workload/spec"
)

type config struct {
	rate     float64
	machines int
	duration time.Duration
	warmup   time.Duration
	drain    time.Duration
	example  string
	workers  int
	cpuprof  string
}

func main() {
	log.SetFlags(0)
	var c config
	flag.Float64Var(&c.rate, "rate", 1000, "sensor messages per second for the site")
	flag.IntVar(&c.machines, "machines", 10, "machines on the simulated line (the rate is spread over them)")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each path")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured time before it (fills the windows, warms connections)")
	flag.DurationVar(&c.drain, "drain", 3*time.Second, "how long to wait for the last decisions after publishing stops")
	flag.StringVar(&c.example, "example", "examples/bearing-failure", "directory of model.txt and model.yaml")
	flag.IntVar(&c.workers, "workers", 0, "override the manifest's scaling.workers")
	flag.StringVar(&c.cpuprof, "cpuprofile", "", "write a CPU profile of the run here")
	flag.Parse()
	if c.cpuprof != "" {
		f, err := os.Create(c.cpuprof)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(c); err != nil {
		log.Fatalf("bench-workload: %v", err)
	}
}

func run(c config) error {
	env, err := setup(c.example)
	if err != nil {
		return err
	}
	defer env.close()
	fmt.Printf("bench-workload: %d machines, %.0f msg/s, %s measured after %s warm-up, GOMAXPROCS=%d, one process on loopback\n",
		c.machines, c.rate, c.duration, c.warmup, runtime.GOMAXPROCS(0))

	ref, err := bearing.Program()
	if err != nil {
		return err
	}
	mod, closeModules, err := moduleProgram(c.example, ref.Manifest)
	if err != nil {
		return err
	}
	defer closeModules()

	e2e, err := env.measure(c, "site-1", env.routerScorer(), ref)
	if err != nil {
		return err
	}
	e2e.print("e2e (router over HTTP)")
	floor, err := env.measure(c, "site-1-floor", env.directScorer(), ref)
	if err != nil {
		return err
	}
	floor.print("floor (in-process model)")
	wasm, err := env.measure(c, "site-1-wasm", env.routerScorer(), mod)
	if err != nil {
		return err
	}
	wasm.print("e2e, WebAssembly module")

	lost := e2e.lost + floor.lost + wasm.lost
	fmt.Printf("bench=workload rate=%.0f e2e_p50_ms=%.2f e2e_p99_ms=%.2f floor_p99_ms=%.2f wasm_e2e_p99_ms=%.2f ref_e2e_p99_ms=%.2f wasm_ratio=%.2f lost=%d dead_lettered=%d\n",
		e2e.rate, e2e.p50, e2e.p99, floor.p99, wasm.p99, e2e.p99, wasm.p99/e2e.p99, lost, e2e.deadLettered+floor.deadLettered+wasm.deadLettered)
	if lost > 0 {
		return fmt.Errorf("%d messages lost", lost)
	}
	return nil
}

// moduleProgram builds the example's module from source with the Go
// toolchain and loads it as a site does (workload.Modules: kept on disk,
// digest-checked, compiled once), paired with the example's manifest.
func moduleProgram(example string, m spec.Manifest) (workload.Program, func(), error) {
	dir, err := os.MkdirTemp("", "bench-workload-module-")
	if err != nil {
		return workload.Program{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	ctx := context.Background()
	out := filepath.Join(dir, "module.wasm")
	digest, err := workload.BuildModule(ctx, "", filepath.Join(example, "workload", "module"), out)
	if err != nil {
		cleanup()
		return workload.Program{}, nil, err
	}
	ms, err := workload.OpenModules(filepath.Join(dir, "modules"), func(_ context.Context, _ string, w io.Writer) error {
		f, err := os.Open(out)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		cleanup()
		return workload.Program{}, nil, err
	}
	m.Module = &spec.Module{Digest: digest, ABI: spec.ABIVersion}
	if err := m.Validate(); err != nil {
		ms.Close()
		cleanup()
		return workload.Program{}, nil, err
	}
	p, err := ms.Program(ctx, m)
	if err != nil {
		ms.Close()
		cleanup()
		return workload.Program{}, nil, err
	}
	return p, func() { ms.Close(); cleanup() }, nil
}
