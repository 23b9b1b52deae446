package main

import (
	"fmt"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fluxInterval is the sync interval Flux recommends for its sources and
// kustomizations when no webhook receiver notifies it.
const fluxInterval = 60 * time.Second

// fluxPickup is how long the same waves would wait for their sites to merely
// notice the change if each site polled every interval instead of
// long-polling. A wave is done when its last site has picked the change up;
// with n sites polling at independent, uniformly random phases that takes
// interval·n/(n+1) on average (the expected maximum of n uniform delays),
// and the waves run one after the other. Apply time is not included: it is
// the same either way.
func fluxPickup(waves []int, interval time.Duration) time.Duration {
	var total time.Duration
	for _, n := range waves {
		if n > 0 {
			total += time.Duration(float64(interval) * float64(n) / float64(n+1))
		}
	}
	return total
}

func fluxExplain(waves []int, interval time.Duration) string {
	nonEmpty := 0
	for _, n := range waves {
		if n > 0 {
			nonEmpty++
		}
	}
	return fmt.Sprintf("%d waves %v polled every %s: expected last pickup per wave interval·n/(n+1), %.1fs in all (flux_pickup_s; worst case %s, one site's mean %s)",
		nonEmpty, waves, interval, fluxPickup(waves, interval).Seconds(),
		time.Duration(nonEmpty)*interval, time.Duration(nonEmpty)*interval/2)
}

// sampler records the process's peak thread count, open descriptors and
// RSS: the resources thousands of in-process agents run out of first.
type sampler struct {
	mu      sync.Mutex
	p       peaks
	done    chan struct{}
	stopped sync.WaitGroup
}

type peaks struct {
	threads, fds int
	rssMiB       float64
}

func (p peaks) String() string {
	return fmt.Sprintf("threads=%d open_fds=%d rss_mib=%.0f", p.threads, p.fds, p.rssMiB)
}

func startSampler() *sampler {
	s := &sampler{done: make(chan struct{})}
	s.stopped.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			// Listing /proc/self/fd with thousands of entries costs real
			// CPU (seconds per run at every tick): count them less often.
			s.sample(i%8 == 0)
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s
}

func (s *sampler) sample(countFDs bool) {
	threads, rss := procStatus()
	fds := 0
	if countFDs {
		if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
			fds = len(ents)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.p.threads = max(s.p.threads, threads)
	s.p.fds = max(s.p.fds, fds)
	s.p.rssMiB = max(s.p.rssMiB, rss)
}

func (s *sampler) peak() peaks {
	s.sample(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

func (s *sampler) stop() {
	close(s.done)
	s.stopped.Wait()
}

// procStatus reads the thread count and resident set (MiB) of this process.
func procStatus() (threads int, rssMiB float64) {
	buf, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(buf), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Threads":
			threads, _ = strconv.Atoi(f[0])
		case "VmRSS":
			kb, _ := strconv.ParseFloat(f[0], 64)
			rssMiB = kb / 1024
		}
	}
	return threads, rssMiB
}

// usage is what the machine has spent so far: CPU time of this process
// (gateway, registry, cloud worker and every agent) and of the Temporal dev
// server, and the data disk's counters. On a 2-core machine, whichever of
// them saturates is what limits a release.
type usage struct {
	wall           time.Time
	self, temporal time.Duration
	// The system part of self, and this process's minor page faults: on
	// a VM whose host takes freed memory back (free page reporting), a
	// page touched again faults to the host, about ten times a warm
	// page's cost, and shows here.
	sys    time.Duration
	faults int64
	disk   diskStats
	// This process's heap allocations and completed collections: with
	// a live heap of 1,000 sites' models, one collection more or less
	// in a rollout moves its CPU time by a tenth or more.
	allocs, gcs uint64
}

func (b *bench) usage() usage {
	u := usage{wall: time.Now(), temporal: procCPU(b.temporalPID), disk: readDiskStats(b.dev)}
	u.allocs, u.gcs = heapAllocs(), gcCycles()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.sys, u.faults = time.Duration(ru.Stime.Nano()), ru.Minflt
	}
	return u
}

// since describes the usage between o and u for a phase touching sites.
func (u usage) since(o usage, sites int) string {
	wall := u.wall.Sub(o.wall).Seconds()
	return fmt.Sprintf("cpu: bench process %.1fs (%.2f cores, %.1fs of it system; allocated %d MiB, %d collections, %d page faults), temporal %.1fs (%.2f cores) over %.1fs; %s",
		(u.self - o.self).Seconds(), (u.self-o.self).Seconds()/wall, (u.sys - o.sys).Seconds(), (u.allocs-o.allocs)>>20, u.gcs-o.gcs, u.faults-o.faults,
		(u.temporal - o.temporal).Seconds(), (u.temporal-o.temporal).Seconds()/wall, wall,
		u.disk.since(o.disk, sites))
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	buf, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line, in clock ticks (100 per second on
	// Linux).
	_, rest, ok := strings.Cut(string(buf), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// diskStats is the kernel's I/O counters for the block device holding the
// data dir: every fsync of a site's files and of the directory's bbolt file
// ends as a flush there, so flushes per site show what durability costs.
type diskStats struct {
	writes, flushes int64
	flushTime       time.Duration
}

func readDiskStats(dev uint64) diskStats {
	buf, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return diskStats{}
	}
	major, minor := strconv.FormatUint((dev>>8)&0xfff, 10), strconv.FormatUint((dev&0xff)|((dev>>12)&0xfff00), 10)
	for _, line := range strings.Split(string(buf), "\n") {
		f := strings.Fields(line)
		// major minor name, then 17 counters on kernels since 5.5: writes
		// completed is the 5th, flushes completed the 16th, time spent
		// flushing (ms) the 17th.
		if len(f) < 20 || f[0] != major || f[1] != minor {
			continue
		}
		n := func(i int) int64 { v, _ := strconv.ParseInt(f[2+i], 10, 64); return v }
		return diskStats{writes: n(5), flushes: n(16), flushTime: time.Duration(n(17)) * time.Millisecond}
	}
	return diskStats{}
}

// deviceOf is the device number of the file system holding path.
func deviceOf(path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Dev
}

func (d diskStats) since(o diskStats, sites int) string {
	return fmt.Sprintf("disk flushes %d (%.1f per site, %.1fs flushing), writes %d",
		d.flushes-o.flushes, float64(d.flushes-o.flushes)/float64(sites), (d.flushTime - o.flushTime).Seconds(), d.writes-o.writes)
}

// heapAllocs is the bytes this process has allocated on its heap so far.
func heapAllocs() uint64 { return readMetric("/gc/heap/allocs:bytes") }

// gcCycles is the collections this process has completed so far.
func gcCycles() uint64 { return readMetric("/gc/cycles/total:gc-cycles") }

func readMetric(name string) uint64 {
	m := []metrics.Sample{{Name: name}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}
