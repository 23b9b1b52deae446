package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/events/internal/nsfake"
	"github.com/modelfleet/modelfleet/orchestrator/orchestratortest"
)

const nsKey = "namespace-key"

// namespace starts the fake namespace over TLS and returns the SDK's own
// receiver client for it, authenticated with a SharedAccessKey.
func namespace(t *testing.T, key string) (*nsfake.Server, *aznamespaces.ReceiverClient) {
	t.Helper()
	fake := nsfake.New("aml-events", "modelfleet", nsKey)
	fake.WaitCap = 50 * time.Millisecond
	srv := httptest.NewTLSServer(fake)
	t.Cleanup(srv.Close)
	c, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(srv.URL, "aml-events", "modelfleet", azcore.NewKeyCredential(key),
		&aznamespaces.ReceiverClientOptions{ClientOptions: azcore.ClientOptions{
			Transport: srv.Client(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

// cloudEvent is a ModelRegistered event as a namespace topic holds it.
func cloudEvent(id, data string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/subscriptions/x/workspaces/ws",`+
		`"type":"Microsoft.MachineLearningServices.ModelRegistered","subject":"models/m:1","time":"2026-03-02T09:15:00Z",`+
		`"datacontenttype":"application/json","data":%s}`, id, data))
}

func registeredCE(id string) json.RawMessage {
	return cloudEvent(id, `{"modelName":"churn","modelVersion":"1"}`)
}

func puller(c Receiver, d Dispatcher, opts PullOptions) *Puller {
	opts.Logger = quietLogger()
	return NewPuller(c, d, opts)
}

func TestPullAcknowledgesAfterDispatch(t *testing.T) {
	fake, c := namespace(t, nsKey)
	fake.Publish(registeredCE("a"), registeredCE("b"), registeredCE("c"))
	d := &fakeDispatcher{fail: func(ev Event) error {
		if len(fake.Acked()) != 0 {
			t.Errorf("an event was acknowledged before its dispatch returned")
		}
		return nil
	}}
	n, err := puller(c, d, PullOptions{}).PullOnce(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("PullOnce = %d, %v; want 3, nil", n, err)
	}
	if got, want := d.ids(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("dispatched %v, want %v", got, want)
	}
	ev := d.evs[0]
	if ev.Schema != SchemaCloudEvents || ev.Subject != "models/m:1" || ev.Time.IsZero() || string(ev.Data) != `{"modelName":"churn","modelVersion":"1"}` {
		t.Errorf("converted event = %+v", ev)
	}
	acked := fake.Acked()
	slices.Sort(acked)
	if !slices.Equal(acked, []string{"a", "b", "c"}) || len(fake.Pending()) != 0 {
		t.Errorf("acked %v, pending %v; want all acked", acked, fake.Pending())
	}
	if fake.Calls("release")+fake.Calls("reject") != 0 {
		t.Errorf("released or rejected something")
	}
}

func TestPullReleasesOnTransientError(t *testing.T) {
	fake, c := namespace(t, nsKey)
	fake.Publish(registeredCE("ok"), registeredCE("flaky"))
	var fails atomic.Bool
	fails.Store(true)
	d := &fakeDispatcher{fail: func(ev Event) error {
		if ev.ID == "flaky" && fails.Load() {
			return errors.New("temporal: context deadline exceeded")
		}
		return nil
	}}
	p := puller(c, d, PullOptions{ReleaseDelay: 5 * time.Second})
	if _, err := p.PullOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fake.Acked(); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("acked %v, want [ok]", got)
	}
	if got, want := fake.ReleaseDelays(), []string{"10"}; !slices.Equal(got, want) {
		t.Errorf("release delays = %v, want %v (5 s rounds up to the service's 10 s)", got, want)
	}
	// Invisible during the delay, redelivered after it.
	if n, _ := p.PullOnce(context.Background()); n != 0 {
		t.Errorf("received %d during the release delay, want 0", n)
	}
	fake.Advance(11 * time.Second)
	fails.Store(false)
	if n, _ := p.PullOnce(context.Background()); n != 1 {
		t.Fatalf("received %d after the delay, want 1", n)
	}
	if got := fake.Acked(); !slices.Equal(got, []string{"ok", "flaky"}) {
		t.Errorf("acked %v, want both", got)
	}
}

func TestPullRejectsMalformed(t *testing.T) {
	fake, c := namespace(t, nsKey)
	fake.Publish(
		cloudEvent("no-name", `{"modelVersion":"1"}`),
		cloudEvent("not-an-object", `"text"`),
		json.RawMessage(`{"specversion":"1.0","id":"binary","source":"/s","type":"Microsoft.MachineLearningServices.ModelRegistered","data_base64":"AAEC"}`),
		registeredCE("good"),
	)
	f := &orchestratortest.Fake{}
	p := puller(c, &TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}, PullOptions{})
	if _, err := p.PullOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	dead := fake.DeadLettered()
	slices.Sort(dead)
	if want := []string{"binary", "no-name", "not-an-object"}; !slices.Equal(dead, want) {
		t.Errorf("dead-lettered %v, want %v", dead, want)
	}
	if got := fake.Acked(); !slices.Equal(got, []string{"good"}) {
		t.Errorf("acked %v, want [good]", got)
	}
	if len(f.Calls()) != 1 {
		t.Errorf("temporal calls = %d, want 1 (only the good event)", len(f.Calls()))
	}
}

func TestPullRenewsLocksWhileDispatchIsSlow(t *testing.T) {
	fake, c := namespace(t, nsKey)
	fake.LockDuration = 150 * time.Millisecond
	fake.Publish(registeredCE("slow"))
	d := &fakeDispatcher{fail: func(Event) error { time.Sleep(600 * time.Millisecond); return nil }}
	if _, err := puller(c, d, PullOptions{RenewEvery: 50 * time.Millisecond}).PullOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls("renewLock"); n < 3 {
		t.Errorf("renewLock calls = %d, want several during a 600 ms dispatch", n)
	}
	// Without renewal the 150 ms lock would have expired and the
	// acknowledgement failed.
	if got := fake.Acked(); !slices.Equal(got, []string{"slow"}) {
		t.Errorf("acked %v, want [slow]", got)
	}
}

func TestPullAcknowledgesNothingWhenTemporalFails(t *testing.T) {
	fake, c := namespace(t, nsKey)
	fake.Publish(registeredCE("a"), registeredCE("b"))
	f := &orchestratortest.Fake{Err: errors.New("frontend down")}
	p := puller(c, &TemporalDispatcher{Orchestrator: f, Logger: quietLogger()}, PullOptions{})
	if _, err := p.PullOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fake.Acked(); len(got) != 0 {
		t.Errorf("acked %v while Temporal was down", got)
	}
	if got := fake.Pending(); len(got) != 2 || fake.Calls("release") != 1 {
		t.Errorf("pending %v after %d releases, want both released", got, fake.Calls("release"))
	}
	if len(fake.DeadLettered()) != 0 {
		t.Errorf("dead-lettered %v", fake.DeadLettered())
	}
}

func TestPullRunUntilCancelled(t *testing.T) {
	fake, c := namespace(t, nsKey)
	d := &fakeDispatcher{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- puller(c, d, PullOptions{}).Run(ctx) }()
	fake.Publish(registeredCE("late"))
	deadline := time.Now().Add(5 * time.Second)
	for len(fake.Acked()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if got := fake.Acked(); !slices.Equal(got, []string{"late"}) {
		t.Errorf("acked %v, want [late]", got)
	}
}

func TestPullWrongKey(t *testing.T) {
	fake, c := namespace(t, "wrong")
	fake.Publish(registeredCE("a"))
	_, err := puller(c, &fakeDispatcher{}, PullOptions{}).PullOnce(context.Background())
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 401 {
		t.Fatalf("PullOnce = %v, want a 401", err)
	}
}

func TestFromCloudEvent(t *testing.T) {
	for _, file := range []string{"cloudevent_model_registered.json", "cloudevents_run_status_changed_monitor_breach.json", "cloudevents_dataset_drift_detected_sample.json"} {
		t.Run(file, func(t *testing.T) {
			want := first(t, file, ctCloudBatch)
			raw := load(t, file)
			if raw[0] == '[' {
				var arr []json.RawMessage
				if err := json.Unmarshal(raw, &arr); err != nil {
					t.Fatal(err)
				}
				raw = arr[0]
			}
			got, err := FromCloudEvent(cloudEventOf(t, string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			// Pulled or pushed, the dispatcher sees the same event.
			if got.ID != want.ID || got.Type != want.Type || got.Source != want.Source || got.Subject != want.Subject ||
				!got.Time.Equal(want.Time) || string(got.Data) != string(want.Data) {
				t.Errorf("pulled %+v\npushed %+v", got, want)
			}
		})
	}
	if _, err := FromCloudEvent(cloudEventOf(t, `{"specversion":"0.3","id":"x","source":"/s","type":"T"}`)); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("specversion 0.3: %v, want invalid", err)
	}
}

func cloudEventOf(t testing.TB, s string) messaging.CloudEvent {
	t.Helper()
	var ce messaging.CloudEvent
	if err := ce.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return ce
}
