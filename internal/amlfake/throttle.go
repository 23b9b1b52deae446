package amlfake

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Throttle sits between the SDK's pipeline and the workspace and answers
// requests 429 Too Many Requests with a Retry-After, as ARM does, before
// the workspace sees them: what a test of it exercises is the SDK's retry
// policy as the code under test configures it.
type Throttle struct {
	match func(*http.Request) bool

	mu         sync.Mutex
	next       policy.Transporter
	n          int
	retryAfter string
	seen       []time.Time
}

// NewThrottle returns a throttle that answers the next n requests that
// match (every request, if match is nil) with Retry-After: retryAfter.
func NewThrottle(n int, retryAfter string, match func(*http.Request) bool) *Throttle {
	return &Throttle{match: match, n: n, retryAfter: retryAfter}
}

// Wrap puts the throttle in front of next; it fits ClientOptions' wrap.
func (t *Throttle) Wrap(next policy.Transporter) policy.Transporter {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next = next
	return t
}

// Set makes the throttle answer the next n matching requests with
// Retry-After: retryAfter (a number of seconds, or an HTTP date).
func (t *Throttle) Set(n int, retryAfter string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n, t.retryAfter = n, retryAfter
}

// Seen returns when the matching requests came, throttled or not.
func (t *Throttle) Seen() []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.seen)
}

// Do implements policy.Transporter.
func (t *Throttle) Do(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	next := t.next
	throttled, retryAfter := false, t.retryAfter
	if t.match == nil || t.match(req) {
		t.seen = append(t.seen, time.Now())
		if throttled = t.n > 0; throttled {
			t.n--
		}
	}
	t.mu.Unlock()
	if !throttled {
		return next.Do(req)
	}
	return &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Request: req,
		Header: http.Header{"Retry-After": {retryAfter}, "Content-Type": {"application/json"}},
		Body:   io.NopCloser(strings.NewReader(`{"error":{"code":"TooManyRequests","message":"slow down"}}`))}, nil
}
