package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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
// directory serves carries (modelfleet.Desired.ReleaseKeys). The set is
// encoded once, here, and named by its tag (modelfleet.Envelope.Tag): an
// agent's poll that names the same tag (agentKeysParam) is answered
// without it.
func (d *Directory) SetReleaseKeys(env *modelfleet.Envelope) {
	if env == nil {
		d.releaseKeys.Store(nil)
		return
	}
	set := &releaseKeySet{env: env, tag: env.Tag()}
	// An envelope always encodes; should it not, every answer carries the
	// set encoded with it, as before.
	set.json, _ = json.Marshal(env)
	d.releaseKeys.Store(set)
}

// releaseKeySet is the release key set as the directory serves it.
type releaseKeySet struct {
	env  *modelfleet.Envelope
	json []byte // env encoded (nil: it did not encode)
	tag  string // env.Tag()
}

// An agent's poll of its desired state (agent.HTTPSource) names, in the
// query parameter agentKeys, the tag of the release key set it holds
// ("" for none). Its answer is then
//
//   - without the release key set when the agent's tag is the gateway's:
//     the agent has it (and still verifies what it takes);
//   - the desired state as the store keeps it (bbolt's bytes, PostgreSQL's
//     jsonb text), not decoded and encoded again, with the release
//     statements its versions name beside them, once, but for those the
//     agent holds (statements.go);
//
// and the header releaseKeysHeader carries the gateway's tag whenever it
// has a key set, so the agent knows a set left out is the one it holds. An
// older agent sends no agentKeys and gets the document as before (indented,
// with the key set); an older gateway ignores the parameter and sends
// that, which a newer agent reads as before.
const (
	agentKeysParam    = "agentKeys"
	releaseKeysHeader = "Modelfleet-Release-Keys"
)

// writeDesired answers a poll that is not an agent's with ds, with the
// release key set.
func (d *Directory) writeDesired(w http.ResponseWriter, ds modelfleet.Desired) {
	d.writeDesiredWith(w, ds, d.releaseKeys.Load())
}

func (d *Directory) writeDesiredWith(w http.ResponseWriter, ds modelfleet.Desired, keys *releaseKeySet) {
	ds.ReleaseKeys = nil
	if keys != nil {
		w.Header().Set(releaseKeysHeader, keys.tag)
		ds.ReleaseKeys = keys.env
	}
	writeJSON(w, http.StatusOK, ds)
}

// writeAgentDesired answers an agent's poll with doc, a desired state as
// the store keeps it, without its release key set: adding the set unless
// agentKeys is its tag, and the statements doc names by ref, once beside
// the versions for an agent that resolves them (refs) but for those it
// holds (held), else in their versions. A doc that is not one JSON
// object, or whose statements go in their versions, is answered decoded
// and encoded again.
func (d *Directory) writeAgentDesired(ctx context.Context, w http.ResponseWriter, doc []byte, agentKeys string, refs bool, held []string) {
	keys := d.releaseKeys.Load()
	doc = bytes.TrimRight(doc, " \t\r\n")
	named, plain := docStatementRefs(doc)
	if len(doc) < 2 || doc[0] != '{' || doc[len(doc)-1] != '}' || keys != nil && keys.json == nil || !plain || len(named) > 0 && !refs {
		var ds modelfleet.Desired
		err := json.Unmarshal(doc, &ds)
		if err == nil {
			err = d.inlineStatements(ctx, &ds)
		}
		if err != nil {
			WriteError(w, fmt.Errorf("fleet: desired state: %w", err))
			return
		}
		d.writeDesiredWith(w, ds, keys)
		return
	}
	// The members to add, before the object's end.
	var members [][]byte
	named = slices.DeleteFunc(named, func(ref string) bool { return slices.Contains(held, ref) })
	if len(named) > 0 {
		docs, err := d.statementDocs(ctx, named)
		if err != nil {
			WriteError(w, err)
			return
		}
		members = append(members, statementsMember(named, docs))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if keys != nil {
		h.Set(releaseKeysHeader, keys.tag)
		if agentKeys != keys.tag {
			members = append(members, append([]byte(`"releaseKeys":`), keys.json...))
		}
	}
	n, empty := len(doc), len(bytes.TrimSpace(doc[1:len(doc)-1])) == 0
	for i, m := range members {
		if i > 0 || !empty {
			n++ // the comma before it
		}
		n += len(m)
	}
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc[:len(doc)-1])
	for i, m := range members {
		if i > 0 || !empty {
			_, _ = w.Write([]byte{','})
		}
		_, _ = w.Write(m)
	}
	_, _ = w.Write([]byte{'}'})
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
