//go:build linux

package rollout

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// zoneSources are where the time package looks for the host's zone
// database on Unix (time/zoneinfo_unix.go), before the embedded copy.
var zoneSources = []string{"/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo"}

const tzChildEnv = "MODELFLEET_TZDATA_CHILD"

// A window names its zone and resolves it on a host without any zone
// database: the one compiled in by the time/tzdata import answers.
//
// Setting ZONEINFO to a missing directory in this process would show
// nothing: LoadLocation reads ZONEINFO once per process, and when it names
// nothing it goes on to the host's /usr/share/zoneinfo, before the embedded
// copy. So the test runs itself again in a child with a user and mount
// namespace of its own, where the host's zone directories are hidden under
// empty tmpfs mounts and ZONEINFO and GOROOT (whose lib/time/zoneinfo.zip is
// the last resort) name missing directories. Without the import the child
// fails. Where unprivileged namespaces are not allowed, it is skipped.
func TestEmbeddedTZData(t *testing.T) {
	if os.Getenv(tzChildEnv) == "1" {
		embeddedTZDataChild(t)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	cmd := exec.Command(exe, "-test.run=^TestEmbeddedTZData$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), tzChildEnv+"=1", "ZONEINFO="+missing, "GOROOT="+missing)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exit):
		t.Skipf("cannot start a child in its own user and mount namespace: %v", err)
	case err != nil:
		t.Fatalf("child without a host zone database: %v\n%s", err, out)
	case strings.Contains(string(out), "--- SKIP"):
		t.Skipf("child skipped:\n%s", out)
	case !strings.Contains(string(out), "--- PASS: TestEmbeddedTZData"):
		t.Fatalf("child ran no test:\n%s", out)
	}
}

func embeddedTZDataChild(t *testing.T) {
	// Mounts made here stay here (a namespace owned by a new user namespace
	// gets slave copies of shared mounts anyway; this makes sure).
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Skipf("make mounts private: %v", err)
	}
	for _, d := range zoneSources {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if err := syscall.Mount("tmpfs", d, "tmpfs", 0, ""); err != nil {
			t.Skipf("hide %s: %v", d, err)
		}
	}
	// Nothing is left for LoadLocation but the embedded copy.
	var left []string
	for _, d := range zoneSources {
		left = append(left, filepath.Join(d, "Europe", "Berlin"))
	}
	left = append(left, filepath.Join(os.Getenv("ZONEINFO"), "Europe", "Berlin"),
		filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"))
	for _, f := range left {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("%s is still there: the test would not show the embedded database at work", f)
		}
	}

	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("LoadLocation without a host database: %v", err)
	}
	for _, tt := range []struct {
		at   time.Time
		zone string
		off  int
	}{
		{time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), "CET", 3600},
		{time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC), "CEST", 7200},
	} {
		if zone, off := tt.at.In(berlin).Zone(); zone != tt.zone || off != tt.off {
			t.Errorf("%s in Berlin: %s %+d, want %s %+d", tt.at, zone, off, tt.zone, tt.off)
		}
	}
	// The window arithmetic itself: Wednesday 22:00 Berlin is 20:00 UTC in
	// summer, and the window closes at midnight local time.
	w, err := ParseWindow(modelfleet.MaintenanceWindow{Schedule: "0 22 * * 1-5", Duration: "2h", TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatalf("ParseWindow without a host database: %v", err)
	}
	open, until := w.State(time.Date(2026, 6, 10, 20, 30, 0, 0, time.UTC))
	if want := time.Date(2026, 6, 10, 22, 0, 0, 0, time.UTC); !open || !until.Equal(want) {
		t.Errorf("State = %v, %v; want open until %v", open, until, want)
	}
}
