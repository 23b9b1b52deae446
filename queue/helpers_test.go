package queue

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var quiet = slog.New(slog.DiscardHandler)

// openAt opens the queue at path and closes it when the test ends.
func openAt(t testing.TB, path string, opts Options) *Queue {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	q, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func openTemp(t testing.TB, opts Options) *Queue {
	return openAt(t, filepath.Join(t.TempDir(), "signals.db"), opts)
}

func send(t testing.TB, q Sender, id, body string) {
	t.Helper()
	if err := q.Send(context.Background(), Message{ID: id, Body: []byte(body), ContentType: "application/json"}); err != nil {
		t.Fatalf("send %q: %v", id, err)
	}
}

// receive receives up to max messages, failing the test if none arrives soon.
func receive(t testing.TB, q Receiver, max int) []Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds, err := q.Receive(ctx, max)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return ds
}

// receiveOne receives exactly one message and checks its ID.
func receiveOne(t testing.TB, q Receiver, id string) Delivery {
	t.Helper()
	ds := receive(t, q, 10)
	if len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("received %v, want only %q", ids(ds), id)
	}
	return ds[0]
}

// receiveNone checks that nothing is available for a short while.
func receiveNone(t testing.TB, q Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ds, err := q.Receive(ctx, 10)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive = %v, %v; want nothing until the deadline", ids(ds), err)
	}
}

func ids(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func stats(t testing.TB, q *Queue) Stats {
	t.Helper()
	s, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
