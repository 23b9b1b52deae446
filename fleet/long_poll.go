package fleet

import (
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
// before serving.
func (d *Directory) SetReleaseKeys(env *modelfleet.Envelope) { d.releaseKeys = env }

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
