package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/modelfleet/modelfleet/httpjson"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzSendHTTP sends arbitrary bodies to POST /api/queues/{name}/messages.
// It must never panic nor fail internally: every answer is a 201 for a
// message that is then in the queue (or a duplicate of one), or a 4xx with a
// JSON error body.
func FuzzSendHTTP(f *testing.F) {
	for _, seed := range []string{
		`{"id":"a","body":"eyJ4IjoxfQ==","contentType":"application/json","properties":{"site":"s1"}}`,
		`{"id":"b"}`,
		`{"id":"c","body":null,"properties":null}`,
		`{"id":"","body":"eA=="}`,
		`{"id":"\u00ff\ud800","body":"eA=="}`,
		`{"id":"d","properties":{"":"x"}}`,
		`{"id":"e","body":"!!"}`,
		`{"id":"f","extra":true}`,
		`{"id":"g"} trailing`,
		`{"id":1}`, `null`, `[]`, `{`, ``, `"str"`,
	} {
		f.Add([]byte(seed))
	}
	clk := newClock()
	q, err := Open(f.TempDir()+"/fuzz.db", Options{Logger: quiet, MaxMessageBytes: 1 << 10, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { q.Close() })
	h := q.Handler()

	f.Fuzz(func(t *testing.T, body []byte) {
		clk.Add(time.Hour) // every input starts outside the duplicate window
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/queues/fuzz/messages", bytes.NewReader(body)))
		switch {
		case rec.Code == http.StatusCreated:
			var resp SendResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.ID == "" {
				t.Fatalf("201 with body %q", rec.Body)
			}
			ps, err := q.Peek(0, MaxPeek, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) == 0 || ps[len(ps)-1].ID != resp.ID {
				t.Fatalf("201 for %q but the last message is not it", resp.ID)
			}
			drain(t, q)
		case rec.Code >= 400 && rec.Code < 500:
			var eb httpjson.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" || eb.Message == "" {
				t.Fatalf("%d with body %q", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body)
		}
	})
}

// drain completes everything, so the queue stays small under fuzzing.
func drain(t *testing.T, q *Queue) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		ds, err := q.Receive(ctx, 100)
		cancel()
		if err != nil {
			return
		}
		for _, d := range ds {
			if err := q.Complete(context.Background(), d); err != nil {
				t.Fatal(err)
			}
		}
	}
}
