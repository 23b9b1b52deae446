// Command signals benchmarks the cloud half of the monitoring loop: signal
// messages (features x bins histograms) sent to an embedded queue
// (queue.Open in a temp dir, the dev stack's queue) and consumed with
// queue.Consume by a drift.Monitor that evaluates every metric on each,
// against a baseline of decoding the same bodies alone, in the same run and
// on the same cores (GOMAXPROCS, default 2).
//
// Every write of the embedded queue is durable when it returns (a bbolt
// commit and its fsync), but writes made at the same time share a commit,
// and Consume receives ahead (-prefetch) and settles in the background, so
// evaluation, not the disk, bounds the batched run. Signals travel as the
// edge Sender sends a backlog: up to -batch messages per queue message
// (-batch 1 sends one each; the first report line measures that too, on a
// smaller sample, where the commits still bound it).
//
// The last line is:
//
//	bench=signals msgs_per_s=<> eval_p99_us=<> decode_only_msgs_per_s=<> lost=<>
//
// lost = sent - evaluated - dead-lettered by design (the malformed bodies).
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
)

func main() {
	var (
		count     = flag.Int("messages", 60000, "signal messages to send and evaluate")
		features  = flag.Int("features", 50, "features per message")
		bins      = flag.Int("bins", 20, "bins per feature (plus the two out-of-bounds ones)")
		sites     = flag.Int("sites", 200, "sites the messages come from (one series each)")
		batch     = flag.Int("batch", 64, "signal messages per queue message at most (the edge Sender's MaxBatch)")
		batchKB   = flag.Int("batch-kb", 192, "queue message body bound, KiB (the edge Sender's MaxBatchBytes)")
		conc      = flag.Int("concurrency", 8, "queue.Consume handler concurrency (the monitor's, app/monitor.go): more handlers share each commit")
		prefetch  = flag.Int("prefetch", 32, "queue.Consume prefetch: messages received ahead of a free handler")
		procs     = flag.Int("procs", 2, "GOMAXPROCS")
		single    = flag.Int("single-messages", 3000, "messages for the one-signal-per-queue-message line (0 skips it)")
		malformed = flag.Int("malformed-every", 1000, "one malformed queue message per this many signals")
		dir       = flag.String("dir", "", "directory for the queue file (default: a new temp dir)")
		profile   = flag.String("cpuprofile", "", "write a CPU profile of the batched run to this file")
	)
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	log.SetFlags(0)

	tmp := *dir
	if tmp == "" {
		var err error
		if tmp, err = os.MkdirTemp("", "bench-signals-"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base, err := newBaseline(rng, *features, *bins, 5000)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := templates(rng, base, 16, 1000)
	fmt.Printf("setup: %d features x %d bins, %d sites, GOMAXPROCS=%d, NumCPU=%d, queue in %s\n",
		*features, *bins, *sites, runtime.GOMAXPROCS(0), runtime.NumCPU(), tmp)

	if *single > 0 {
		w, err := build(base, tmpl, *single, *sites, 1, *batchKB<<10, 0)
		if err != nil {
			log.Fatal(err)
		}
		r, err := run(w, tmp+"/single.db", *conc, *prefetch)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("one signal per queue message: %d msgs, send %.0f queue msgs/s, consume+evaluate msgs_per_s=%.0f lost=%d (commits bound this)\n",
			w.signals, r.sendPerSec, r.msgsPerSec, r.lost)
	}

	w, err := build(base, tmpl, *count, *sites, *batch, *batchKB<<10, *malformed)
	if err != nil {
		log.Fatal(err)
	}
	decodePerSec, decodeCPU := decodeOnly(w, runtime.GOMAXPROCS(0))
	monitorPerSec, monitorCPU, err := monitorOnly(w, runtime.GOMAXPROCS(0))
	if err != nil {
		log.Fatal(err)
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	r, err := run(w, tmp+"/batched.db", *conc, *prefetch)
	if err != nil {
		log.Fatal(err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("batched: %d signals in %d queue messages (%.1f per message, %d malformed), send %.0f queue msgs/s, consume %.0f queue msgs/s, %d verdicts breached, eval p50 %.0f us, consume used %.1f CPU s (%.0f signals per CPU s), loadavg %s",
		w.signals, len(w.queueMsgs), float64(w.signals)/float64(len(w.queueMsgs)-w.malformed), w.malformed,
		r.sendPerSec, r.queuePerSec, r.breached, r.evalP50us, r.cpuSeconds, float64(w.signals)/r.cpuSeconds, load)
	fmt.Printf("CPU per signal: decode %.0f us, monitor (decode + evaluate) %.0f us, consume through the queue %.0f us; monitor alone, no queue: %.0f msgs/s\n",
		decodeCPU, monitorCPU, r.cpuSeconds*1e6/float64(w.signals), monitorPerSec)
	fmt.Printf("bench=signals msgs_per_s=%.0f eval_p99_us=%.0f decode_only_msgs_per_s=%.0f lost=%d\n",
		r.msgsPerSec, r.evalP99us, decodePerSec, r.lost)
}
