package fleet

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// DefaultMaxLongPolls bounds the desired-state long polls one gateway holds
// open at once (each is a goroutine, a connection and a wake-up channel);
// past it an agent is told to come back later (503, Retry-After) and
// retries with its backoff.
const DefaultMaxLongPolls = 20000

// longPollSlack is how long past its wait a long poll may take to write its
// answer: the server's WriteTimeout is shorter than a long poll.
const longPollSlack = 30 * time.Second

// SetMaxLongPolls sets the cap on concurrent long polls (default
// DefaultMaxLongPolls); call it before serving.
func (d *Directory) SetMaxLongPolls(n int) {
	if n > 0 {
		d.polls = make(chan struct{}, n)
	}
}

// SetReleaseKeys sets the signed release key set every desired state the
// directory serves carries (modelfleet.Desired.ReleaseKeys); call it
// before serving. The set is encoded once, here, and named by its tag
// (modelfleet.Envelope.Tag): an agent's poll that names the same tag
// (agentQuery) is answered without it.
func (d *Directory) SetReleaseKeys(env *modelfleet.Envelope) {
	d.releaseKeys = env
	d.releaseKeysJSON, d.releaseKeysTag = nil, ""
	if env == nil {
		return
	}
	b, err := json.Marshal(env)
	if err != nil {
		// An envelope always encodes; should it not, every answer
		// carries the set encoded with it, as before.
		return
	}
	d.releaseKeysJSON, d.releaseKeysTag = b, env.Tag()
}

// An agent's poll of its desired state (agent.HTTPSource) names, in the
// query parameter agentKeys, the tag of the release key set it holds
// ("" for none). Its answer then
//
//   - leaves out the release key set when the agent's tag is the
//     gateway's: the agent has it (it still verifies what it takes);
//   - leaves out each model's Previous: what a rollback restores is the
//     directory's bookkeeping, which no agent reads, and with signed
//     releases it is a second signed statement per model;
//   - is compact JSON, not indented.
//
// The header releaseKeysHeader carries the gateway's tag whenever it has a
// key set, so the agent knows a set left out is the one it holds. An older
// agent sends no agentKeys and gets the whole document, as before; an
// older gateway ignores the parameter and sends the whole document, which
// a newer agent reads as before.
const (
	agentKeysParam    = "agentKeys"
	releaseKeysHeader = "Modelfleet-Release-Keys"
)

// writeDesired answers a poll with ds: the whole document, or an agent's
// answer when agent (the agentKeys parameter was sent) with the agent's
// key set tag.
func (d *Directory) writeDesired(w http.ResponseWriter, ds modelfleet.Desired, agent bool, agentKeys string) {
	if d.releaseKeysTag != "" {
		w.Header().Set(releaseKeysHeader, d.releaseKeysTag)
	}
	if !agent || d.releaseKeysJSON == nil && d.releaseKeys != nil {
		ds.ReleaseKeys = d.releaseKeys
		writeJSON(w, http.StatusOK, ds)
		return
	}
	for name, dm := range ds.Models {
		if dm.Previous != nil {
			dm.Previous = nil
			ds.Models[name] = dm
		}
	}
	ds.ReleaseKeys = nil
	b, err := json.Marshal(ds)
	if err != nil {
		WriteError(w, err)
		return
	}
	if d.releaseKeysJSON != nil && agentKeys != d.releaseKeysTag {
		// The document is an object: the set goes in before its end.
		b = append(b[:len(b)-1], `,"releaseKeys":`...)
		b = append(b, d.releaseKeysJSON...)
		b = append(b, '}')
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// beginLongPoll takes a long-poll slot and lifts the server's write
// deadline for the wait: a long poll is the one request that is meant to
// be slow. It returns false, having answered 503, when every slot is taken.
func (d *Directory) beginLongPoll(w http.ResponseWriter, wait time.Duration) (release func(), ok bool) {
	if wait <= 0 {
		return func() {}, true
	}
	select {
	case d.polls <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "5")
		httpjson.Write(w, http.StatusServiceUnavailable, httpjson.ErrorBody{Error: modelfleet.EINTERNAL, Message: "too many sites are waiting for their desired state at this gateway; retry later"})
		return nil, false
	}
	// Servers without a write deadline (tests' httptest) say so: fine.
	httpjson.LongRequest(w, wait+longPollSlack)
	return func() { <-d.polls }, true
}
