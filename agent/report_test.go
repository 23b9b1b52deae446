package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// writeCounter counts the writes an agent sends to the directory.
type writeCounter struct {
	mu     sync.Mutex
	writes map[string]int // "METHOD path"
}

func (c *writeCounter) count(r *http.Request) {
	if r.Method == http.MethodGet {
		return
	}
	c.mu.Lock()
	c.writes[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
}

func (c *writeCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.writes {
		out[k] = v
	}
	return out
}

// A site nobody registered appears in the directory (router URL, what it
// serves) from its agent's first report, and from then on its agent writes
// to the directory once per interval: the report, which is its heartbeat.
func TestNewSiteRegistersByReportingOncePerInterval(t *testing.T) {
	dir := t.TempDir()
	gw, err := OpenGateway(GatewayConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	target, _ := url.Parse(gw.URL())
	counter := &writeCounter{writes: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		counter.count(r)
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	const interval = 200 * time.Millisecond
	e, err := Open(Config{SiteID: "fresh", DataDir: filepath.Join(dir, "site"), Listen: "127.0.0.1:0", GatewayURL: front.URL,
		Labels: map[string]string{"ring": "canary"}, HeartbeatInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Edge.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var site modelfleet.Site
	deadline := time.Now().Add(10 * time.Second)
	for {
		site, err = gw.Directory.Get("fresh")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new site never registered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if site.RouterURL != e.Record().RouterURL || site.TaskQueue != modelfleet.SiteTaskQueue("fresh") || site.Labels["ring"] != "canary" || site.LastSeen == "" {
		t.Errorf("registered = %+v", site)
	}

	// Let it settle into its loop, then count writes over several intervals.
	time.Sleep(2 * interval)
	before := counter.snapshot()
	const intervals = 5
	time.Sleep(intervals * interval)
	after := counter.snapshot()
	reports := after["PUT /api/sites/fresh/actual"] - before["PUT /api/sites/fresh/actual"]
	if reports < intervals-2 || reports > intervals+1 {
		t.Errorf("%d reports in %d intervals, want one per interval", reports, intervals)
	}
	for k, n := range after {
		if k != "PUT /api/sites/fresh/actual" && n-before[k] > 0 {
			t.Errorf("%d writes %s besides the report", n-before[k], k)
		}
	}
	if n := after["PUT /api/sites/fresh"]; n != 0 {
		t.Errorf("%d site record PUTs, want none: the report carries the record", n)
	}
}
