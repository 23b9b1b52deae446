package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// configMap writes files as the kubelet updates a mounted ConfigMap: each
// version in its own directory, `..data` a symlink to the current one,
// swapped by rename, and the file a symlink through `..data`.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func (c *configMap) write(doc string) {
	c.t.Helper()
	c.n++
	v := fmt.Sprintf("..v%d", c.n)
	if err := os.Mkdir(filepath.Join(c.dir, v), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, v, "bindings.yaml"), []byte(doc), 0o644); err != nil {
		c.t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(v, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	if c.n == 1 {
		if err := os.Symlink(filepath.Join("..data", "bindings.yaml"), filepath.Join(c.dir, "bindings.yaml")); err != nil {
			c.t.Fatal(err)
		}
	}
}

const bindingsHead = "apiVersion: modelfleet.dev/v1\nkind: RoleBindings\nbindings:\n"

// TestBindingsReload: a changed file takes effect at the next check; a
// file that does not parse, or is gone, keeps the bindings in force and
// is logged, audited and counted once; SIGHUP's Reload applies at once.
func TestBindingsReload(t *testing.T) {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.write(bindingsHead + "  - {role: viewer, subjects: [ana]}\n")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	r := NewBindingsReloader(filepath.Join(cm.dir, "bindings.yaml"), log, reg)
	b, err := r.Load()
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(nil, b, log, nil)
	r.Guard = g
	ana := &Principal{Kind: KindPerson, Subject: "ana"}
	roles := func() string {
		var out []string
		for _, gr := range g.bindings.Load().Grants(ana) {
			out = append(out, gr.Role)
		}
		return strings.Join(out, ",")
	}
	count := func(outcome string) float64 { return testutil.ToFloat64(r.reloads.WithLabelValues(outcome)) }

	if err := r.Check(); err != nil || roles() != "viewer" || count("applied") != 0 {
		t.Fatalf("unchanged file: %v, roles %q, applied %v", err, roles(), count("applied"))
	}

	cm.write(bindingsHead + "  - {role: release-manager, subjects: [ana]}\n")
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if got := roles(); got != "release-manager" {
		t.Errorf("after a valid change ana holds %q", got)
	}

	cm.write(bindingsHead + "  - {role: god, subjects: [ana]}\n")
	if err := r.Check(); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Errorf("broken file: %v", err)
	}
	if got := roles(); got != "release-manager" {
		t.Errorf("a broken file changed the bindings: ana holds %q", got)
	}
	_ = r.Check() // the same broken content: not counted or logged again
	if got := count("refused"); got != 1 {
		t.Errorf("refused = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.failing); got != 1 {
		t.Errorf("failing = %v", got)
	}
	if strings.Count(logs.String(), "role bindings file refused") != 1 {
		t.Errorf("log:\n%s", logs.String())
	}
	if a := g.RecentAudit(); len(a) == 0 || a[0].Allowed || a[0].Action != "reload role bindings" || !strings.Contains(a[0].Why, "unknown role") {
		t.Errorf("audit = %+v", a)
	}

	cm.write(bindingsHead + "  - {role: admin, subjects: [ana]}\n")
	if err := r.Check(); err != nil || roles() != "admin" || testutil.ToFloat64(r.failing) != 0 {
		t.Errorf("fixed file: %v, roles %q", err, roles())
	}
	if a := g.RecentAudit(); !a[0].Allowed || a[0].Action != "reload role bindings" {
		t.Errorf("audit = %+v", a[0])
	}

	// Gone (a ConfigMap deleted under the gateway): the bindings stay.
	if err := os.Remove(filepath.Join(cm.dir, "bindings.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(); err == nil || roles() != "admin" {
		t.Errorf("file gone: %v, roles %q", err, roles())
	}
	if err := os.Symlink(filepath.Join("..data", "bindings.yaml"), filepath.Join(cm.dir, "bindings.yaml")); err != nil {
		t.Fatal(err)
	}
	before := count("applied")
	if err := r.Reload(); err != nil || count("applied") != before+1 {
		t.Errorf("SIGHUP reload: %v", err)
	}
	if err := r.Check(); err != nil || count("applied") != before+1 {
		t.Errorf("a check after the reload applied again: %v", err)
	}
	if got, err := (&BindingsReloader{Path: filepath.Join(cm.dir, "missing")}).Load(); err == nil || got != nil {
		t.Errorf("missing file at start: %v", err)
	}
}
