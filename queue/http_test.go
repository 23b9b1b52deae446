package queue

import (
	"context"
	"encoding/json"
	"github.com/modelfleet/modelfleet/httpjson"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func serve(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
	return rec
}

func TestHTTPStatusCodes(t *testing.T) {
	q := openTemp(t, Options{MaxMessageBytes: 64})
	h := q.Handler()
	for _, tc := range []struct {
		method, target, body string
		status               int
		code                 string
	}{
		{"POST", "/api/queues/signals/messages", `{"id":"a","body":"eyJ4IjoxfQ==","contentType":"application/json","properties":{"site":"s1"}}`, 201, ""},
		{"POST", "/api/queues/signals/messages", `{"id":"a","body":"eyJ4IjoxfQ=="}`, 201, ""}, // duplicate: accepted
		{"POST", "/api/queues/signals/messages", `{"id":"b"}`, 201, ""},                       // empty body is a message
		{"POST", "/api/queues/signals/messages", `{"body":"eA=="}`, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/messages", `{"id":"c","body":{"raw":"json"}}`, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/messages", `{"id":"c","body":"not base64!"}`, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/messages", `{"id":"c","extra":1}`, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/messages", `{"id":"c"} {}`, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/messages", `{"id":"c"`, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/messages", `{"id":"c","body":"` + strings.Repeat("QUFB", 30) + `"}`, 413, modelfleet.ETOOLARGE},
		{"POST", "/api/queues/signals/messages", `{"id":"c","body":"` + strings.Repeat("QUFB", 100<<10) + `"}`, 413, modelfleet.ETOOLARGE},
		{"POST", "/api/queues/other/messages", `{"id":"c"}`, 404, modelfleet.ENOTFOUND},
		{"DELETE", "/api/queues/signals/messages", ``, 405, modelfleet.EINVALID},
		{"GET", "/api/queues/signals/redrive", ``, 405, modelfleet.EINVALID},
		{"GET", "/api/queues/signals/nope", ``, 404, modelfleet.ENOTFOUND},
		{"GET", "/", ``, 404, modelfleet.ENOTFOUND},
		{"GET", "/api/queues/signals/stats", ``, 200, ""},
		{"GET", "/api/queues/signals/messages", ``, 200, ""},
		{"GET", "/api/queues/signals/messages?from=1&max=5&deadletter=true", ``, 200, ""},
		{"GET", "/api/queues/signals/messages?max=0", ``, 400, modelfleet.EINVALID},
		{"GET", "/api/queues/signals/messages?from=-1", ``, 400, modelfleet.EINVALID},
		{"GET", "/api/queues/signals/messages?max=lots", ``, 400, modelfleet.EINVALID},
		{"GET", "/api/queues/signals/messages?from=99999999999999999999", ``, 400, modelfleet.EINVALID},
		{"GET", "/api/queues/signals/messages?deadletter=maybe", ``, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/redrive", ``, 200, ""},
		{"POST", "/api/queues/signals/redrive?max=0", ``, 400, modelfleet.EINVALID},
		{"POST", "/api/queues/signals/redrive?max=x", ``, 400, modelfleet.EINVALID},
		{"GET", "/api/queues/other/stats", ``, 404, modelfleet.ENOTFOUND},
	} {
		rec := serve(t, h, tc.method, tc.target, tc.body)
		if rec.Code != tc.status {
			t.Errorf("%s %s %.60s: %d %s, want %d", tc.method, tc.target, tc.body, rec.Code, rec.Body, tc.status)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", tc.method, tc.target, ct)
		}
		if tc.code != "" {
			var eb httpjson.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error != tc.code || eb.Message == "" {
				t.Errorf("%s %s: error body %s, want code %s", tc.method, tc.target, rec.Body, tc.code)
			}
		}
		if rec.Code == 405 && rec.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.target)
		}
	}
	if s := stats(t, q); s.Sent != 2 || s.Duplicates != 1 {
		t.Errorf("stats after the HTTP sends %+v", s)
	}
	d := receive(t, q, 1)[0]
	if d.ID != "a" || string(d.Body) != `{"x":1}` || d.ContentType != "application/json" || d.Properties["site"] != "s1" {
		t.Errorf("message sent over HTTP arrived as %+v", d)
	}
}

// The Client drives the whole API against a real server, as the CLI and
// remote edge agents do.
func TestClient(t *testing.T) {
	q := openTemp(t, Options{Name: "monitoring"})
	other := openTemp(t, Options{Name: "other"})
	srv := httptest.NewServer(NewHandler(q, other))
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, Queue: "monitoring"}
	ctx := context.Background()

	var _ Sender = c
	if err := c.Send(ctx, Message{ID: "a", Body: []byte{0, 1, 2, 0xff}, Properties: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	send(t, c, "b", "2")
	if err := c.Send(ctx, Message{Body: []byte("x")}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("send without id: %v, want invalid", err)
	}
	s, err := c.Stats(ctx)
	if err != nil || s.Sent != 2 || s.Active != 2 {
		t.Fatalf("stats %+v, %v", s, err)
	}
	ps, err := c.Peek(ctx, 0, 10, false)
	if err != nil || len(ps) != 2 || string(ps[0].Body) != "\x00\x01\x02\xff" || ps[0].Properties["k"] != "v" || ps[1].SequenceNumber != 2 {
		t.Fatalf("peek %+v, %v", ps, err)
	}
	for _, d := range receive(t, q, 2) {
		if err := q.DeadLetter(ctx, d, "MalformedJSON", "bad"); err != nil {
			t.Fatal(err)
		}
	}
	ps, err = c.Peek(ctx, 0, 10, true)
	if err != nil || len(ps) != 2 || ps[0].DeadLetterReason != "MalformedJSON" {
		t.Fatalf("peek dead letters %+v, %v", ps, err)
	}
	n, err := c.Redrive(ctx, 1)
	if err != nil || n != 1 {
		t.Fatalf("redrive = %d, %v", n, err)
	}
	if s, _ := c.Stats(ctx); s.Active != 1 || s.DeadLettered != 1 {
		t.Errorf("stats after redrive %+v", s)
	}
	if s, err := (&Client{BaseURL: srv.URL, Queue: "other"}).Stats(ctx); err != nil || s.Sent != 0 {
		t.Errorf("the other queue: %+v, %v", s, err)
	}
	_, err = (&Client{BaseURL: srv.URL, Queue: "missing"}).Stats(ctx)
	if modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("stats of a missing queue: %v", err)
	}
}

func TestNewHandlerRejectsDuplicateNames(t *testing.T) {
	q := openTemp(t, Options{Name: "same"})
	defer func() {
		if recover() == nil {
			t.Error("two queues with one name were accepted")
		}
	}()
	NewHandler(q, q)
}
