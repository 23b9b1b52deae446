package fleet

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
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

// An agent's poll (Client.AgentDesired) is answered with the desired
// state, without the release key set once the agent names the gateway's;
// the gateway's tag comes in a header either way. A poll without the
// parameter (an older agent, an operator) gets the whole document, as
// before.
func TestAgentPollLeavesOutTheKeySetItHolds(t *testing.T) {
	d := mustOpen(t, "s1")
	set := &modelfleet.Envelope{PayloadType: modelfleet.KeySetPayloadType, Payload: []byte(`{"keys":[],"serial":2}`), Signatures: []modelfleet.Signature{{KeyID: "k", Sig: []byte("sig")}}}
	d.SetReleaseKeys(set)
	for _, v := range []modelfleet.DesiredVersion{version("1", 100), version("2", 100)} {
		release := "r" + v.Version
		if _, err := d.Step(modelfleet.StepRequest{Release: release, Model: "m", New: v, Sites: []string{"s1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Finish(release, "m", []string{"s1"}); err != nil {
			t.Fatal(err)
		}
	}
	// A release under way: its lease keeps what the site served before.
	if _, err := d.Step(modelfleet.StepRequest{Release: "r3", Model: "m", New: version("3", 100), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	ctx := context.Background()

	whole, err := c.Desired(ctx, "s1", -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if whole.ReleaseKeys == nil || whole.ReleaseKeys.Tag() != set.Tag() || len(whole.Models["m"].Previous) != 1 {
		t.Fatalf("a poll without %s: keys %v, previous %v; want the whole document", agentKeysParam, whole.ReleaseKeys, whole.Models["m"].Previous)
	}

	first, tag, err := c.AgentDesired(ctx, "s1", -1, 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tag != set.Tag() {
		t.Fatalf("gateway's key set tag %q, want %q", tag, set.Tag())
	}
	if first.ReleaseKeys == nil || first.ReleaseKeys.Tag() != set.Tag() {
		t.Fatalf("an agent holding no key set got %v, want the gateway's", first.ReleaseKeys)
	}
	if !reflect.DeepEqual(first, whole) {
		t.Fatalf("agent's answer:\n%+v\nwant the document\n%+v", first, whole)
	}

	again, tag, err := c.AgentDesired(ctx, "s1", -1, 0, set.Tag(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ReleaseKeys != nil || tag != set.Tag() {
		t.Fatalf("an agent holding the gateway's set: keys %v, tag %q; want none, %q", again.ReleaseKeys, tag, set.Tag())
	}
	again.ReleaseKeys = whole.ReleaseKeys
	if !reflect.DeepEqual(again, whole) {
		t.Fatalf("an agent holding the gateway's set got\n%+v\nwant the document less the set\n%+v", again, whole)
	}

	stale, _, err := c.AgentDesired(ctx, "s1", -1, 0, "0123", nil)
	if err != nil {
		t.Fatal(err)
	}
	if stale.ReleaseKeys == nil || stale.ReleaseKeys.Tag() != set.Tag() {
		t.Fatalf("an agent holding another set got %v, want the gateway's", stale.ReleaseKeys)
	}

	// A site before its first step: the empty state.
	if _, err := d.Put(modelfleet.Site{ID: "s2", TaskQueue: modelfleet.SiteTaskQueue("s2")}); err != nil {
		t.Fatal(err)
	}
	empty, _, err := c.AgentDesired(ctx, "s2", -1, 0, set.Tag(), nil)
	if err != nil || empty.Site != "s2" || empty.Revision != 0 || empty.Models == nil || len(empty.Models) != 0 {
		t.Fatalf("a site before its first step: %+v, %v", empty, err)
	}
	if _, _, err := c.AgentDesired(ctx, "nosuch", -1, 0, "", nil); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Fatalf("an unknown site: %v, want not found", err)
	}

	// A gateway without release keys sends no tag, nor a set.
	d.SetReleaseKeys(nil)
	none, tag, err := c.AgentDesired(ctx, "s1", -1, 0, set.Tag(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if none.ReleaseKeys != nil || tag != "" {
		t.Fatalf("a gateway without keys: set %v, tag %q", none.ReleaseKeys, tag)
	}
}
