package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// A gitops site's agent takes its desired state from the mounted file:
// it applies each higher revision and keeps serving through a bad file.
func TestEdgeConvergesFromDesiredFile(t *testing.T) {
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

	e, err := OpenEdge(EdgeConfig{SiteID: "s1", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0",
		DesiredFile: file, HeartbeatInterval: 100 * time.Millisecond, NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; e.Agent.Close() }()

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
