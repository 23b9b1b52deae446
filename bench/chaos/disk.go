package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet"
)

// A site's disk filling up (-disk-full, on by default). The last site (in
// the fleet wave) keeps its data dir on a small tmpfs of its own, mounted
// by the run: a disk whose ENOSPC is the kernel's, not a simulation. It
// needs mount(2), so root with CAP_SYS_ADMIN (CI's containers, this
// machine); elsewhere the run says so and goes on without it. Before a
// release the run fills the disk with a ballast file to within half an
// artifact of full, so the site cannot store the new version, and checks
// from outside:
//
//   - the release's step fails at that site, and the reason it reports is
//     ENOSPC's ("no space left on device");
//   - the wave's failure budget counts it (the release status's failed);
//   - the site keeps serving its previous version throughout (the score
//     probes, and its router's models: no new version), also after its
//     agent is SIGKILLed and started again on the full disk;
//   - once the ballast is removed, the site converges on its desired
//     state by itself (the agent retries a failed apply at each poll).
//
// Apart from that one restart, the chaos leaves that site's process alone
// while its disk is full.

const (
	diskSize = 16 << 20 // the site's tmpfs
	// wantReason is ENOSPC as the site reports it.
	wantReason = "no space left on device"
)

type diskFault struct {
	site    *site
	ballast string
	// skipped says why the fault is not injected ("" when it is).
	skipped string

	// What the run saw; see report.
	filled    bool // the ballast is in place
	release   string
	exercised bool   // a release step failed at the site with ENOSPC
	reason    string // the reason it reported
	failed    int    // the wave's failed count then
	budget    int
	recovery  time.Duration
	converged bool
	restarted bool // the agent was killed and started again on the full disk
	problems  []string
}

// mountDisk gives s its data dir on a tmpfs of diskSize, or records why
// it cannot.
func mountDisk(s *site) *diskFault {
	d := &diskFault{site: s, ballast: filepath.Join(s.dir, "ballast")}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		d.skipped = err.Error()
		return d
	}
	err := syscall.Mount("tmpfs", s.dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", diskSize))
	if err != nil {
		d.skipped = fmt.Sprintf("mount a tmpfs on %s: %v (a site's disk filling up needs root with CAP_SYS_ADMIN, as CI runs)", s.dir, err)
	}
	return d
}

func (d *diskFault) unmount() {
	if d != nil && d.skipped == "" {
		_ = syscall.Unmount(d.site.dir, syscall.MNT_DETACH)
	}
}

// fill writes the ballast until the disk is full, then gives back leave
// bytes: less than an artifact, so the next version cannot be stored.
func (d *diskFault) fill(leave int64) error {
	f, err := os.OpenFile(d.ballast, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			return err
		}
		if n > diskSize {
			return fmt.Errorf("wrote %d bytes to %s without filling it: not the run's tmpfs", n, d.site.dir)
		}
	}
	if err := f.Truncate(max(n-leave, 0)); err != nil {
		return err
	}
	d.filled = true
	d.site.full.Store(true)
	return nil
}

// free removes the ballast, as an operator would.
func (d *diskFault) free() error {
	d.filled = false
	defer d.site.full.Store(false)
	return os.Remove(d.ballast)
}

// diskBefore fills the site's disk before release v, once; it stays full
// until a release reaches the site.
func (c *chaos) diskBefore(v string) error {
	d := c.disk
	if d == nil || d.skipped != "" || d.exercised || d.filled {
		return nil
	}
	if v == "1" {
		return nil // the site first serves a version, to keep serving
	}
	fmt.Fprintf(c.out, "disk full: %s's disk filled before release %s\n", d.site.id, v)
	return d.fill(int64(len(c.artifact) / 2))
}

// diskAfter checks what release v did at the full site; once a step
// failed there, it frees the disk and waits for the site to converge.
func (c *chaos) diskAfter(ctx context.Context, v string, st modelfleet.ReleaseStatus) {
	d := c.disk
	if d == nil || !d.filled {
		return
	}
	var ss *modelfleet.SiteStatus
	for i := range st.Sites {
		if st.Sites[i].Site == d.site.id {
			ss = &st.Sites[i]
		}
	}
	if ss == nil || ss.State == modelfleet.SitePending {
		// The release ended before the site's wave (a rollback at the
		// canary): the disk stays full for the next one.
		return
	}
	d.release = v
	problem := func(format string, args ...any) {
		d.problems = append(d.problems, fmt.Sprintf(format, args...))
		fmt.Fprintf(c.out, "disk full: "+format+"\n", args...)
	}
	if ss.State != modelfleet.SiteFailed || !strings.Contains(ss.Reason, wantReason) {
		problem("release %s left %s %s (%q), not failed with ENOSPC", v, d.site.id, ss.State, ss.Reason)
	} else {
		d.exercised, d.reason = true, ss.Reason
	}
	for _, w := range st.Waves {
		if w.Name == ss.Wave {
			d.failed, d.budget = w.Failed, w.Budget
		}
	}
	if d.exercised && d.failed < 1 {
		problem("wave %s of release %s failed at %s but its failure count is %d", ss.Wave, v, d.site.id, d.failed)
	}
	// Restarted on its full disk (as a crash or a node reboot would), it
	// comes back from what it stored.
	d.site.proc.Kill()
	if err := d.site.proc.Start(ctx); err != nil {
		problem("%s did not start again on its full disk: %v", d.site.id, err)
		return
	}
	d.restarted = true
	// Still serving the previous version, and not the new one.
	served, err := c.obs.served(ctx, d.site)
	switch {
	case err != nil:
		problem("%s's router unreachable with its disk full: %v", d.site.id, err)
	case len(served) == 0:
		problem("%s serves nothing with its disk full", d.site.id)
	case slices.ContainsFunc(served, func(m string) bool { return strings.HasPrefix(m, modelName+":"+v+":") }):
		problem("%s serves %s:%s, which it could not store", d.site.id, modelName, v)
	}
	if err := d.free(); err != nil {
		problem("free %s's disk: %v", d.site.id, err)
		return
	}
	dur, why, ok := c.obs.awaitConverged(ctx, d.site, 90*time.Second)
	d.recovery, d.converged = dur, ok
	if !ok {
		problem("%s did not converge %.0fs after its disk was freed: %s", d.site.id, dur.Seconds(), why)
		return
	}
	fmt.Fprintf(c.out, "disk full: release %s failed at %s (%q; wave %s failed %d of budget %d); freed, converged in %.1fs\n",
		v, d.site.id, d.reason, ss.Wave, d.failed, d.budget, dur.Seconds())
}
