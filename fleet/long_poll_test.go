package fleet

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// Polling the desired state of site IDs that do not exist leaves nothing
// behind: the notifier used to keep a channel per ID ever asked for.
func TestDesiredOfUnknownSitesLeavesNoWaiter(t *testing.T) {
	d := mustOpen(t, "s1")
	for i := range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Desired(ctx, "nosuch-"+string(rune('a'+i%26))+string(rune('a'+i/26)), 0)
		cancel()
		if modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
			t.Fatalf("unknown site: %v, want not found", err)
		}
	}
	d.notify.mu.Lock()
	n := len(d.notify.ch)
	d.notify.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d wake-up channels left for unknown sites", n)
	}
}

// Past the cap, a long poll is answered at once with 503 and Retry-After
// instead of holding one more connection; a poll that does not wait is
// still served.
func TestLongPollsAreCapped(t *testing.T) {
	d := mustOpen(t, "s1")
	d.SetMaxLongPolls(1)
	key := &modelfleet.Envelope{PayloadType: modelfleet.KeySetPayloadType, Payload: []byte("{}")}
	d.SetReleaseKeys(key)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	first := make(chan error, 1)
	go func() {
		resp, err := http.Get(srv.URL + "/api/sites/s1/desired?after=100&wait=5s")
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	// Wait until the first poll holds the slot.
	for deadline := time.Now().Add(5 * time.Second); len(d.polls) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first long poll never started")
		}
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get(srv.URL + "/api/sites/s1/desired?after=100&wait=5s")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusServiceUnavailable; got != want || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second long poll: %d (Retry-After %q), want %d with Retry-After", got, resp.Header.Get("Retry-After"), want)
	}
	resp, err = http.Get(srv.URL + "/api/sites/s1/desired?after=-1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ds modelfleet.Desired
	if err := json.NewDecoder(resp.Body).Decode(&ds); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a poll that does not wait: %d %v", resp.StatusCode, err)
	}
	if ds.ReleaseKeys == nil || ds.ReleaseKeys.PayloadType != modelfleet.KeySetPayloadType {
		t.Fatalf("the desired state does not carry the release key set: %+v", ds.ReleaseKeys)
	}
	srv.CloseClientConnections()
	<-first
}
