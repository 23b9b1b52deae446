package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet/edge"
)

// TestEveryServerIsSentTheSameRequests: the floor's targets are the
// router's but for the address, each with the API key and its own route
// key, and both servers answer such a request. Sent to the router only,
// the headers cost the router's side of the comparison what carrying them
// costs, with no router behind it (vegeta.go, requestHeaders).
func TestEveryServerIsSentTheSameRequests(t *testing.T) {
	c := &config{keys: 3, example: benchExample(), work: t.TempDir()}
	read := func(name, url string) string {
		t.Helper()
		p, err := c.writeTargets(name, url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(b), url, "URL")
	}
	floor, router := read("floor", "http://127.0.0.1:1"), read("router", "http://127.0.0.1:2")
	if floor != router {
		t.Fatalf("the floor's targets differ from the router's:\n%s\n---\n%s", floor, router)
	}
	targets := strings.Split(strings.TrimSpace(floor), "\n\n")
	if len(targets) != c.keys {
		t.Fatalf("%d targets, want one per route key (%d)", len(targets), c.keys)
	}
	for i, tg := range targets {
		for _, h := range requestHeaders(i) {
			if !strings.Contains(tg, "\n"+h+"\n") {
				t.Errorf("target %d lacks %q:\n%s", i, h, tg)
			}
		}
	}

	for _, mode := range []string{"floor", "router"} {
		h, sample := benchServer(t, mode, "model.txt")
		req := httptest.NewRequest(http.MethodPost, "/score/"+modelName, bytes.NewReader(sample))
		req.Header.Set("Content-Type", "application/json")
		for _, line := range requestHeaders(0) {
			k, v, _ := strings.Cut(line, ": ")
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Errorf("%s answered %d to a target's request: %s", mode, w.Code, w.Body)
		}
		if mode == "router" && w.Header().Get(edge.HeaderVersion) == "" {
			t.Errorf("the router named no version: the request did not reach a model")
		}
	}
}
