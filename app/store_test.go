package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/pgtest"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func call(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(buf, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, buf)
		}
	}
	return resp.StatusCode
}

// Two gateway replicas on one PostgreSQL: what one writes the other
// serves, a site's long poll on one wakes when the other steps it, a
// signal sent to one is in the shared queue, and readiness follows the
// database through a restart.
func TestGatewayReplicasOnPostgres(t *testing.T) {
	srv := pgtest.NeedServer(t)
	dsn := srv.NewDatabase(t)
	var gws []*Gateway
	for _, name := range []string{"a", "b"} {
		gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(t.TempDir(), name), Store: dsn, Orchestrator: &orchestratortest.Fake{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gw.Close() })
		gws = append(gws, gw)
	}
	a, b := gws[0].URL(), gws[1].URL()
	for _, u := range []string{a, b} {
		if code := call(t, "GET", u+"/readyz", "", nil); code != 200 {
			t.Fatalf("%s/readyz = %d", u, code)
		}
	}
	if code := call(t, "PUT", a+"/api/sites/s1", `{"id":"s1","taskQueue":"modelfleet-site-s1"}`, nil); code != 200 {
		t.Fatalf("put site = %d", code)
	}
	var site modelfleet.Site
	if code := call(t, "GET", b+"/api/sites/s1", "", &site); code != 200 || site.ID != "s1" {
		t.Fatalf("site on the other replica = %d %+v", code, site)
	}
	got := make(chan modelfleet.Desired, 1)
	go func() {
		var ds modelfleet.Desired
		call(t, "GET", b+"/api/sites/s1/desired?after=0&wait=30s", "", &ds)
		got <- ds
	}()
	time.Sleep(100 * time.Millisecond) // let the poll wait; it is correct either way
	start := time.Now()
	step := `{"release":"release/m/1","model":"m","new":{"version":"1","digest":"sha256:` + strings.Repeat("1", 64) + `","format":"lightgbm","artifactUrl":"http://r/1","weight":100},"sites":["s1"]}`
	if code := call(t, "POST", a+"/api/rollouts/step", step, nil); code != 200 {
		t.Fatalf("step = %d", code)
	}
	select {
	case ds := <-got:
		if ds.Revision != 1 {
			t.Errorf("long poll on b returned revision %d, want 1", ds.Revision)
		}
		if time.Since(start) > 4*time.Second {
			t.Errorf("the wake took %v: NOTIFY did not reach b (its fallback poll did)", time.Since(start))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll on b never woke")
	}
	if code := call(t, "POST", a+"/api/queues/signals/messages", `{"id":"m1","body":"e30="}`, nil); code != 201 {
		t.Fatalf("send = %d", code)
	}
	var st struct{ Sent int }
	if code := call(t, "GET", b+"/api/queues/signals/stats", "", &st); code != 200 || st.Sent != 1 {
		t.Errorf("stats on b = %d %+v; want the message a took", code, st)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Each replica finds out on its own that its pooled connections died
	// (a request on one may fail once): both must be ready again.
	for _, r := range []string{a, b} {
		for call(t, "GET", r+"/readyz", "", nil) != 200 {
			if ctx.Err() != nil {
				t.Fatalf("%s is not ready again after PostgreSQL restarted", r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A request on a connection that died may fail once; b must then
	// answer from the restarted database.
	code := call(t, "GET", b+"/api/sites/s1", "", &site)
	for code != 200 && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		code = call(t, "GET", b+"/api/sites/s1", "", &site)
	}
	if code != 200 || site.ID != "s1" {
		t.Errorf("b after the restart = %d %+v", code, site)
	}
}
