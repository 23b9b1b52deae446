package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
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

// The release key set travels to a site once: the source names the set it
// holds, the gateway leaves it out while it holds the same, and Next still
// returns it with every desired state (the envelope it received), so the
// site checks what it always did. A new set at the gateway travels again.
func TestHTTPSourceReceivesTheKeySetOnce(t *testing.T) {
	dir, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if _, err := dir.Put(modelfleet.Site{ID: "s1", TaskQueue: modelfleet.SiteTaskQueue("s1")}); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := modelfleet.TrustedKeyOf(key.Public())
	signSet := func(serial int64) *modelfleet.Envelope {
		set, err := modelfleet.SignKeySet(modelfleet.Trust{Keys: []modelfleet.TrustedKey{pub}, Serial: serial}, []ed25519.PrivateKey{key})
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	set := signSet(1)
	dir.SetReleaseKeys(set)
	var sent atomic.Int64 // answers that carried a key set
	h := dir.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if bytes.Contains(rec.Body.Bytes(), []byte(`"releaseKeys"`)) {
			sent.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, rec.Body)
	}))
	defer srv.Close()
	src := NewHTTPSource(srv.URL, "s1", 0)
	ctx := context.Background()
	var got []*modelfleet.Envelope
	for range 3 {
		ds, err := src.Next(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds.ReleaseKeys)
	}
	if sent.Load() != 1 {
		t.Fatalf("the key set travelled with %d of 3 answers, want 1", sent.Load())
	}
	for i, env := range got {
		if env == nil || env.Tag() != set.Tag() {
			t.Fatalf("poll %d returned key set %v, want the gateway's", i, env)
		}
	}

	next := signSet(2)
	dir.SetReleaseKeys(next)
	ds, err := src.Next(ctx, -1)
	if err != nil {
		t.Fatal(err)
	}
	if ds.ReleaseKeys == nil || ds.ReleaseKeys.Tag() != next.Tag() || sent.Load() != 2 {
		t.Fatalf("after a new set at the gateway: got %v (%d answers with a set), want the new set, sent once more", ds.ReleaseKeys, sent.Load())
	}

	dir.SetReleaseKeys(nil)
	if ds, err = src.Next(ctx, -1); err != nil || ds.ReleaseKeys != nil {
		t.Fatalf("a gateway without keys: set %v, err %v; want none", ds.ReleaseKeys, err)
	}
}
