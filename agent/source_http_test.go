package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// HTTPSource against the site directory: a site the directory does not know
// is ENOTFOUND until a report carrying its record registers it; a long poll
// with nothing new returns the same revision once its wait ends, and one
// that a step raises returns before.
func TestHTTPSourceLongPollsAndReports(t *testing.T) {
	dir := t.TempDir()
	v1 := exampleVersions(t, dir, "1")[0]
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ctx := context.Background()
	const wait = 200 * time.Millisecond
	src := NewHTTPSource(gw.URL(), "s1", wait)

	if _, err := src.Next(ctx, -1); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("Next for an unknown site: %v, want ENOTFOUND", err)
	}
	rec := modelfleet.Site{ID: "s1", RouterURL: "http://127.0.0.1:9001", TaskQueue: modelfleet.SiteTaskQueue("s1")}
	if err := src.Report(ctx, modelfleet.Actual{Site: "s1", Models: map[string]modelfleet.ActualModel{}, SiteRecord: &rec}); err != nil {
		t.Fatalf("Report registering the site: %v", err)
	}
	if got, err := gw.Directory.Get("s1"); err != nil || got.RouterURL != rec.RouterURL {
		t.Fatalf("registered = %+v, %v", got, err)
	}
	ds, err := src.Next(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	same, err := src.Next(ctx, ds.Revision)
	if err != nil || same.Revision != ds.Revision {
		t.Fatalf("long poll with nothing new = revision %d, %v; want %d", same.Revision, err, ds.Revision)
	}
	if took := time.Since(start); took < wait/2 {
		t.Errorf("long poll with nothing new returned after %v, want about its wait (%v)", took, wait)
	}

	long := NewHTTPSource(gw.URL(), "s1", time.Minute)
	got := make(chan modelfleet.Desired, 1)
	go func() {
		next, err := long.Next(ctx, ds.Revision)
		if err != nil {
			t.Error(err)
		}
		got <- next
	}()
	time.Sleep(100 * time.Millisecond) // let it wait
	if _, err := gw.Directory.Step(modelfleet.StepRequest{Release: "release/bearing-failure/1", Model: "bearing-failure", New: v1, Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case next := <-got:
		if next.Revision <= ds.Revision || modelfleet.SplitString(next.Models["bearing-failure"].Versions) != "1:100" {
			t.Fatalf("after a step: %+v, want a higher revision serving 1:100", next)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not return on a step")
	}
}
