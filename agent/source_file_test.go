package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// A gitops site's agent takes its desired state from the mounted file:
// it applies each higher revision and keeps serving through a bad file.
func TestSiteConvergesFromDesiredFile(t *testing.T) {
	dir := t.TempDir()
	vs := exampleVersions(t, dir, "1", "2")
	v1, v2 := vs[0], vs[1]

	file := filepath.Join(dir, "desired.json")
	write := func(doc string) {
		t.Helper()
		// As the kubelet updates a ConfigMap: a new file renamed into place.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	desired := func(site string, rev int64, v modelfleet.DesiredVersion) string {
		v.Weight = 100
		b, _ := json.Marshal(modelfleet.Desired{Site: site, Revision: rev, Models: map[string]modelfleet.DesiredModel{"bearing-failure": {Versions: []modelfleet.DesiredVersion{v}}}})
		return string(b)
	}
	write(desired("s1", 1, v1))

	e, err := Open(Config{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0",
		DesiredFile: file, HeartbeatInterval: 100 * time.Millisecond, NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; e.Edge.Close() }()

	waitServing(t, e, "1")
	write(desired("s1", 2, v2))
	waitServing(t, e, "2")

	// Garbage, another site's state, an older revision: all ignored.
	for _, bad := range []string{"{not json", desired("s9", 3, v1), desired("s1", 1, v1), strings.Repeat(" ", 2<<20)} {
		write(bad)
		time.Sleep(300 * time.Millisecond)
		if got := servedVersion(t, e); got != "2" {
			t.Fatalf("after a bad file (%.20q…) the site serves %q, want 2", bad, got)
		}
	}
	if _, err := readDesiredFile(file, "s1"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err = %v", err)
	}
}

// FileSource returns only a higher revision of its own site's state; a
// missing, malformed, foreign, stale or oversized file keeps it waiting,
// each reason logged once however often the file is re-read.
func TestFileSourceReturnsOnlyAHigherRevisionOfItsSite(t *testing.T) {
	file := filepath.Join(t.TempDir(), "desired.json")
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(file+".tmp", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	doc := func(site string, rev int64) string {
		b, _ := json.Marshal(modelfleet.Desired{Site: site, Revision: rev, Models: map[string]modelfleet.DesiredModel{
			"bearing-failure": {Versions: []modelfleet.DesiredVersion{{Version: "1", Digest: digest, Weight: 100}}}}})
		return string(b)
	}
	var logs bytes.Buffer // Next runs on the test's goroutine
	src := NewFileSource(file, "s1", 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	next := func(after int64, within time.Duration) (modelfleet.Desired, error) {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		return src.Next(ctx, after)
	}
	waits := func(after int64) {
		t.Helper()
		if ds, err := next(after, 150*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next(%d) = revision %d, %v; want it to keep waiting", after, ds.Revision, err)
		}
	}

	waits(-1) // no file yet
	write(doc("s1", 3))
	if ds, err := next(-1, 5*time.Second); err != nil || ds.Revision != 3 || ds.Site != "s1" {
		t.Fatalf("Next(-1) = %+v, %v; want revision 3", ds, err)
	}
	waits(3) // the same revision
	bad := []string{
		"{not json",
		doc("s9", 4),
		`{"site":"s1","revision":4,"models":{},"extra":1}`,
		`{"site":"s1","revision":4,"models":{"bearing-failure":{"versions":[{"version":"1","digest":"` + digest + `","weight":50}]}}}`,
		strings.Repeat(" ", 2<<20),
	}
	for _, b := range bad {
		write(b)
		waits(3)
	}
	write(doc("s1", 2)) // older than applied: skipped, not an error
	waits(3)
	write(doc("s1", 4))
	if ds, err := next(3, 5*time.Second); err != nil || ds.Revision != 4 {
		t.Fatalf("Next(3) = %+v, %v; want revision 4", ds, err)
	}
	if n := strings.Count(logs.String(), "desired-state file unusable"); n != 1+len(bad) {
		t.Errorf("%d warnings, want one per distinct reason (%d):\n%s", n, 1+len(bad), logs.String())
	}
	if err := src.Report(context.Background(), modelfleet.Actual{Site: "s1"}); err != nil {
		t.Errorf("Report: %v, want nil (the gitops reconciler reports)", err)
	}
}

// A desired-state document followed by anything else is refused whole: a
// file written over a longer one without truncation must not half-apply.
func TestDesiredFileRefusesDataAfterTheDocument(t *testing.T) {
	doc := `{"site":"s1","revision":3}`
	if _, err := parseDesired([]byte(doc+"\n"), "d.json", "s1"); err != nil {
		t.Fatalf("document with a trailing newline: %v", err)
	}
	for _, tail := range []string{`{"site":"s1","revision":9}`, `x`, `]`} {
		if _, err := parseDesired([]byte(doc+tail), "d.json", "s1"); err == nil || !strings.Contains(err.Error(), "data after") {
			t.Errorf("document + %q: err = %v, want data after its JSON object", tail, err)
		}
	}
}
