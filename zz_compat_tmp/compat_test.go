package compat

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/events"
	"github.com/modelfleet/modelfleet/registry"
)

func TestCompat(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		evs, err := events.Decode(b, r.Header.Get("Content-Type"))
		if err != nil { t.Errorf("decode: %v", err); w.WriteHeader(400); return }
		mr, err := events.DecodeModelRegistered(evs[0])
		if err != nil { t.Errorf("decode mr: %v", err) }
		t.Logf("%+v", mr)
		got <- b
	}))
	defer srv.Close()
	r, err := registry.Open(t.TempDir(), registry.Options{WebhookURL: srv.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil { t.Fatal(err) }
	defer r.Close()
	m := modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "a", Version: "1"}, Format: "lightgbm", Tags: map[string]string{"k": "v"}}
	if _, _, err := r.Register(context.Background(), m, strings.NewReader("x"), nil); err != nil { t.Fatal(err) }
	select { case b := <-got: t.Logf("%s", b); case <-time.After(3*time.Second): t.Fatal("timeout") }
}
