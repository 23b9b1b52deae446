package registry

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelfleet/modelfleet"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// delivery is one POST the test webhook received.
type delivery struct {
	header http.Header
	body   []byte
}

// webhook is an Event Grid subscriber stand-in: it records each delivery and
// answers with the next scripted status (200 once the script runs out).
type webhook struct {
	mu     sync.Mutex
	got    []delivery
	script []int
	reply  string
}

func newWebhook(t *testing.T, script ...int) (*webhook, *httptest.Server) {
	wh := &webhook{script: script}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		wh.mu.Lock()
		wh.got = append(wh.got, delivery{req.Header.Clone(), body})
		status := http.StatusOK
		if len(wh.script) > 0 {
			status, wh.script = wh.script[0], wh.script[1:]
		}
		reply := wh.reply
		wh.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(srv.Close)
	return wh, srv
}

func (wh *webhook) deliveries() []delivery {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return slices.Clone(wh.got)
}

func (wh *webhook) count() int { return len(wh.deliveries()) }

// events decodes one delivery, which must be an array of exactly one event.
func (d delivery) event(t *testing.T) Event {
	t.Helper()
	var evs []Event
	if err := json.Unmarshal(d.body, &evs); err != nil {
		t.Fatalf("delivery is not a JSON array of events: %v: %s", err, d.body)
	}
	if len(evs) != 1 {
		t.Fatalf("delivery holds %d events, want 1: %s", len(evs), d.body)
	}
	return evs[0]
}

func fastRetry(url string) Options {
	return Options{WebhookURL: url, RetryInitial: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}
}

func TestDeliverEventShape(t *testing.T) {
	wh, srv := newWebhook(t)
	r := openTest(t, "", Options{WebhookURL: srv.URL, Workspace: "factory-a"})
	m := testModel("churn", "7")
	m.Tags = map[string]string{"team": "quality"}
	m.Properties = map[string]string{"auc": "0.91"}
	register(t, r, m, "artifact", nil)

	waitFor(t, "delivery", func() bool { return wh.count() == 1 && r.Pending() == 0 })
	d := wh.deliveries()[0]
	if ct := d.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if et := d.header.Get("aeg-event-type"); et != "Notification" {
		t.Errorf("aeg-event-type = %q, want Notification", et)
	}

	// The exact JSON shape, not just what decodes into our struct.
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(d.body, &raw); err != nil || len(raw) != 1 {
		t.Fatalf("body %s: %v", d.body, err)
	}
	var keys []string
	for k := range raw[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"data", "dataVersion", "eventTime", "eventType", "id", "metadataVersion", "subject", "topic"}; !slices.Equal(keys, want) {
		t.Errorf("event keys = %q, want %q", keys, want)
	}
	var data map[string]any
	if err := json.Unmarshal(raw[0]["data"], &data); err != nil {
		t.Fatal(err)
	}
	wantData := map[string]any{
		"modelName":       "churn",
		"modelVersion":    "7",
		"modelTags":       map[string]any{"team": "quality"},
		"modelProperties": map[string]any{"auc": "0.91"},
	}
	if got, want := mustJSON(t, data), mustJSON(t, wantData); got != want {
		t.Errorf("data = %s, want %s", got, want)
	}

	ev := d.event(t)
	if _, err := uuid.Parse(ev.ID); err != nil {
		t.Errorf("id %q is not a UUID: %v", ev.ID, err)
	}
	if want := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/modelfleet/providers/Microsoft.MachineLearningServices/workspaces/factory-a"; ev.Topic != want {
		t.Errorf("topic = %q, want %q", ev.Topic, want)
	}
	if ev.Subject != "models/churn:7" || ev.EventType != modelfleet.EventModelRegistered {
		t.Errorf("subject, eventType = %q, %q", ev.Subject, ev.EventType)
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.EventTime); err != nil {
		t.Errorf("eventTime %q: %v", ev.EventTime, err)
	}
	if ev.DataVersion != "2" || ev.MetadataVersion != "1" {
		t.Errorf("dataVersion, metadataVersion = %q, %q", ev.DataVersion, ev.MetadataVersion)
	}
	if got := testutil.ToFloat64(r.metrics.deliveries.WithLabelValues("delivered")); got != 1 {
		t.Errorf("delivered counter = %v", got)
	}
}

func TestDeliverEmptyTagsAsObjects(t *testing.T) {
	wh, srv := newWebhook(t)
	r := openTest(t, "", Options{WebhookURL: srv.URL})
	register(t, r, testModel("plain", "1"), "artifact", nil)
	waitFor(t, "delivery", func() bool { return wh.count() == 1 })
	var raw []struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(wh.deliveries()[0].body, &raw); err != nil {
		t.Fatal(err)
	}
	if tags, props := string(raw[0].Data["modelTags"]), string(raw[0].Data["modelProperties"]); tags != "{}" || props != "{}" {
		t.Errorf("modelTags, modelProperties = %s, %s; want {} and {}", tags, props)
	}
}

func TestDeliverInOrderOneEventPerPost(t *testing.T) {
	wh, srv := newWebhook(t)
	r := openTest(t, "", Options{WebhookURL: srv.URL})
	for _, v := range []string{"1", "2", "3"} {
		register(t, r, testModel("m", v), "artifact-"+v, nil)
	}
	waitFor(t, "3 deliveries", func() bool { return wh.count() == 3 && r.Pending() == 0 })
	var subjects []string
	for _, d := range wh.deliveries() {
		subjects = append(subjects, d.event(t).Subject)
	}
	if want := []string{"models/m:1", "models/m:2", "models/m:3"}; !slices.Equal(subjects, want) {
		t.Errorf("subjects = %q, want %q", subjects, want)
	}
}

func TestIdempotentRegisterEmitsOnce(t *testing.T) {
	wh, srv := newWebhook(t)
	r := openTest(t, "", Options{WebhookURL: srv.URL})
	register(t, r, testModel("m", "1"), "artifact", nil)
	waitFor(t, "delivery", func() bool { return wh.count() == 1 && r.Pending() == 0 })
	if _, created := register(t, r, testModel("m", "1"), "artifact", nil); created {
		t.Fatal("re-register created = true")
	}
	time.Sleep(100 * time.Millisecond)
	if n := wh.count(); n != 1 {
		t.Errorf("webhook got %d deliveries, want 1", n)
	}
}

func TestDeliverRetriesUntilSuccess(t *testing.T) {
	wh, srv := newWebhook(t, 500, 503, 200)
	r := openTest(t, "", fastRetry(srv.URL))
	register(t, r, testModel("m", "1"), "artifact", nil)
	waitFor(t, "delivery after retries", func() bool { return r.Pending() == 0 })

	ds := wh.deliveries()
	if len(ds) != 3 {
		t.Fatalf("webhook got %d deliveries, want 3", len(ds))
	}
	id := ds[0].event(t).ID
	for i, d := range ds {
		if got := d.event(t).ID; got != id {
			t.Errorf("attempt %d sent event %s, want the same event %s", i, got, id)
		}
		if got, want := d.header.Get("aeg-delivery-count"), []string{"0", "1", "2"}[i]; got != want {
			t.Errorf("attempt %d: aeg-delivery-count = %q, want %q", i, got, want)
		}
	}
	if got := testutil.ToFloat64(r.metrics.deliveries.WithLabelValues("failed")); got != 2 {
		t.Errorf("failed counter = %v, want 2", got)
	}
	if dls, _ := r.DeadLetters(); len(dls) != 0 {
		t.Errorf("dead letters = %+v, want none", dls)
	}
}

func TestDeliverDeadLetters(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			wh, srv := newWebhook(t, status)
			wh.reply = "schema not understood"
			r := openTest(t, "", fastRetry(srv.URL))
			register(t, r, testModel("bad", "1"), "artifact", nil)
			register(t, r, testModel("good", "1"), "artifact", nil)
			waitFor(t, "outbox drained", func() bool { return r.Pending() == 0 })

			ds := wh.deliveries()
			if len(ds) != 2 {
				t.Fatalf("webhook got %d deliveries, want 2 (no retry of the refused one)", len(ds))
			}
			dls, err := r.DeadLetters()
			if err != nil || len(dls) != 1 {
				t.Fatalf("DeadLetters = %+v, %v; want 1", dls, err)
			}
			dl := dls[0]
			if dl.ID != ds[0].event(t).ID || dl.Subject != "models/bad:1" {
				t.Errorf("dead letter is event %s (%s), want the refused one", dl.ID, dl.Subject)
			}
			if dl.LastHTTPStatusCode != status || dl.Response != "schema not understood" || dl.DeliveryAttempts != 1 {
				t.Errorf("dead letter = %+v", dl)
			}
			if status == http.StatusBadRequest && dl.DeadLetterReason != "UndeliverableDueToHttpBadRequest" {
				t.Errorf("deadLetterReason = %q", dl.DeadLetterReason)
			}
			if ds[1].event(t).Subject != "models/good:1" {
				t.Error("the event after a dead letter was not delivered")
			}
		})
	}
}

func TestPendingEventsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir, Options{}) // no webhook: events wait
	register(t, r, testModel("m", "1"), "a1", nil)
	register(t, r, testModel("m", "2"), "a2", nil)
	if n := r.Pending(); n != 2 {
		t.Fatalf("Pending = %d, want 2", n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	wh, srv := newWebhook(t)
	r2 := openTest(t, dir, Options{WebhookURL: srv.URL})
	waitFor(t, "pending events delivered after Open", func() bool { return r2.Pending() == 0 })
	var subjects []string
	for _, d := range wh.deliveries() {
		subjects = append(subjects, d.event(t).Subject)
	}
	if want := []string{"models/m:1", "models/m:2"}; !slices.Equal(subjects, want) {
		t.Errorf("subjects = %q, want %q", subjects, want)
	}
}

func TestCloseWhileRetrying(t *testing.T) {
	dir := t.TempDir()
	wh, srv := newWebhook(t, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	r := openTest(t, dir, Options{WebhookURL: srv.URL, RetryInitial: time.Hour})
	register(t, r, testModel("m", "1"), "a1", nil)
	waitFor(t, "first attempt", func() bool { return wh.count() == 1 })

	done := make(chan error)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close blocked on the retry backoff")
	}
	r2 := openTest(t, dir, Options{})
	if n := r2.Pending(); n != 1 {
		t.Errorf("after Close mid-retry: Pending = %d, want 1", n)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
