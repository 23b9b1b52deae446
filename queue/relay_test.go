package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// TestRelay: the relay takes sends as the queue's own handler does and
// passes them, stamped, to another Sender (here an embedded queue standing
// in for Service Bus); it keeps no queue of its own.
func TestRelay(t *testing.T) {
	to := openTemp(t, Options{Name: "signals", Logger: quiet, MaxMessageBytes: 4 << 10})
	stamp := func(r *http.Request, m *Message) error {
		if m.Properties["who"] == "mallory" {
			return modelfleet.Errorf(modelfleet.EFORBIDDEN, "mallory may not send")
		}
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
		m.Properties["stamped"] = "yes"
		return nil
	}
	srv := httptest.NewServer(&Relay{Name: "signals", Stamp: stamp, To: to, MaxMessageBytes: 4 << 10, Logger: quiet})
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Queue: "signals"}
	ctx := context.Background()
	if err := c.Send(ctx, Message{ID: "a", Body: []byte(`{"x":1}`), ContentType: "application/json", Properties: map[string]string{"sig": "s"}}); err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, to, "a")
	if string(d.Body) != `{"x":1}` || d.ContentType != "application/json" || d.Properties["sig"] != "s" || d.Properties["stamped"] != "yes" {
		t.Errorf("relayed %+v", d.Message)
	}
	for name, tc := range map[string]struct {
		err  error
		code string
	}{
		"refused by the stamp": {c.Send(ctx, Message{ID: "m", Body: []byte("x"), Properties: map[string]string{"who": "mallory"}}), modelfleet.EFORBIDDEN},
		"no id":                {c.Send(ctx, Message{Body: []byte("x")}), modelfleet.EINVALID},
		"oversize":             {c.Send(ctx, Message{ID: "big", Body: make([]byte, 5<<10)}), modelfleet.ETOOLARGE},
		"another queue":        {(&Client{BaseURL: srv.URL, Queue: "other"}).Send(ctx, Message{ID: "o", Body: []byte("x")}), modelfleet.ENOTFOUND},
	} {
		if got := modelfleet.ErrorCode(tc.err); got != tc.code {
			t.Errorf("%s: %v, want %s", name, tc.err, tc.code)
		}
	}
	if _, err := c.Stats(ctx); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("stats through a relay: %v", err)
	}
	if _, err := c.Peek(ctx, 0, 1, false); err == nil {
		t.Error("peek through a relay answered")
	}
	receiveNone(t, to)

	// The broker failing (here: closed) is a 500 that names nothing of it.
	to.Close()
	err := c.Send(ctx, Message{ID: "late", Body: []byte("x")})
	if modelfleet.ErrorCode(err) != modelfleet.EINTERNAL || strings.Contains(err.Error(), "closed") {
		t.Errorf("send to a closed broker: %v", err)
	}
}

// FuzzRelayHTTP: any request body is relayed whole or refused with a 4xx
// in the error envelope.
func FuzzRelayHTTP(f *testing.F) {
	for _, seed := range []string{
		`{"id":"a","body":"eyJ4IjoxfQ==","properties":{"modelfleet-signature":"AA=="}}`,
		`{"id":""}`, `{"id":"b","body":"!!"}`, `{"id":"c","extra":1}`, `{"id":"d"} x`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	clk := newClock()
	to := openAt(f, f.TempDir()+"/relay.db", Options{Name: "signals", Logger: quiet, MaxMessageBytes: 1 << 10, Now: clk.Now})
	h := &Relay{Name: "signals", To: to, MaxMessageBytes: 1 << 10, Logger: quiet}
	f.Fuzz(func(t *testing.T, body []byte) {
		clk.Add(time.Hour)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/queues/signals/messages", bytes.NewReader(body)))
		switch {
		case rec.Code == http.StatusCreated:
			var resp SendResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.ID == "" {
				t.Fatalf("201 with body %q", rec.Body)
			}
			drain(t, to)
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
