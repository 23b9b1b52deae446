// Command workload benchmarks the edge workload path (make bench-workload):
// a sensor reading published by the factory-line simulator → the embedded
// MQTT broker → the bearing-failure workload (window, units, features) → the
// site's real inference router over HTTP (an edge agent built as the dev
// stack builds it, with the example model deployed and an API key) → the
// decision published back through the broker → received by a subscriber.
//
// In the same run it measures the floor: the same path with the model call
// replaced by a direct in-process call of the same model. Everything shares
// one process and the machine's cores (loopback only), so the figures
// compare the two paths; they are not a plant's capacity. It prints human
// lines, then one line for machines:
//
//	bench=workload rate= e2e_p50_ms= e2e_p99_ms= floor_p99_ms= lost= dead_lettered=
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
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

	e2e, err := env.measure(c, "site-1", env.routerScorer())
	if err != nil {
		return err
	}
	e2e.print("e2e (router over HTTP)")
	floor, err := env.measure(c, "site-1-floor", env.directScorer())
	if err != nil {
		return err
	}
	floor.print("floor (in-process model)")

	fmt.Printf("bench=workload rate=%.0f e2e_p50_ms=%.2f e2e_p99_ms=%.2f floor_p99_ms=%.2f lost=%d dead_lettered=%d\n",
		e2e.rate, e2e.p50, e2e.p99, floor.p99, e2e.lost+floor.lost, e2e.deadLettered+floor.deadLettered)
	if e2e.lost+floor.lost > 0 {
		return fmt.Errorf("%d messages lost", e2e.lost+floor.lost)
	}
	return nil
}
