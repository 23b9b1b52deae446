// Package nsfake is a local stand-in for the data plane of an Azure Event
// Grid namespace topic subscription (pull delivery), REST API version
// 2024-06-01, as documented and as the aznamespaces SDK sends and reads it:
//
//	POST {endpoint}/topics/{topic}/eventsubscriptions/{sub}:receive?maxEvents=&maxWaitTime=
//	  → {"value":[{"brokerProperties":{"lockToken","deliveryCount"},"event":{CloudEvent}}]}
//	POST ...:acknowledge | :reject | :renewLock, and :release?releaseDelayInSeconds=
//	  {"lockTokens":[...]} → {"succeededLockTokens":[...],"failedLockTokens":[{"lockToken","error":{"code","message"}}]}
//
// with "Authorization: SharedAccessKey <key>". It keeps locks (with a lock
// duration, renewal and expiry), delivery counts, delayed release and a
// dead-letter list, enough to test a consumer's settlement logic. It is not
// Azure: error codes and limits beyond the documented ones are guesses.
package nsfake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIVersion is the only api-version the fake accepts.
const APIVersion = "2024-06-01"

// Server is one topic subscription. Serve it over TLS (httptest.NewTLSServer):
// azcore sends a key credential only over https.
type Server struct {
	Topic, Subscription, Key string
	LockDuration             time.Duration // default 60 s, the service's default
	MaxDeliveryCount         int           // default 10; then dead-lettered
	WaitCap                  time.Duration // shortens receive long-polls in tests (default: as asked)

	mu      sync.Mutex
	offset  time.Duration // Advance
	entries []*entry
	dead    []string
	acked   []string
	calls   map[string]int
	delays  []string // releaseDelayInSeconds of each release
}

type entry struct {
	id          string
	event       json.RawMessage
	token       string // "" while not locked
	lockedUntil time.Time
	availableAt time.Time
	deliveries  int
}

// New returns an empty subscription.
func New(topic, subscription, key string) *Server {
	return &Server{Topic: topic, Subscription: subscription, Key: key, calls: map[string]int{}}
}

// Publish adds CloudEvents (JSON objects with an "id").
func (s *Server) Publish(events ...json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range events {
		var head struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(ev, &head)
		s.entries = append(s.entries, &entry{id: head.ID, event: ev})
	}
}

// Advance moves the fake's clock (lock expiry, release delays) forward.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	s.offset += d
	s.mu.Unlock()
}

// Acked, DeadLettered and Pending list event IDs; Calls counts requests by
// operation; ReleaseDelays lists the delay of every release request.
func (s *Server) Acked() []string        { return s.list(func() []string { return s.acked }) }
func (s *Server) DeadLettered() []string { return s.list(func() []string { return s.dead }) }
func (s *Server) ReleaseDelays() []string {
	return s.list(func() []string { return s.delays })
}
func (s *Server) Pending() []string {
	return s.list(func() []string {
		var ids []string
		for _, e := range s.entries {
			ids = append(ids, e.id)
		}
		return ids
	})
}
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Server) list(f func() []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), f()...)
}

func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "SharedAccessKey "+s.Key {
		fail(w, http.StatusUnauthorized, "Unauthorized", "the SharedAccessKey is missing or wrong")
		return
	}
	if v := r.URL.Query().Get("api-version"); v != APIVersion {
		fail(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("api-version %q is not supported", v))
		return
	}
	path, op, _ := strings.Cut(r.URL.Path, ":")
	if r.Method != http.MethodPost || path != "/topics/"+s.Topic+"/eventsubscriptions/"+s.Subscription {
		fail(w, http.StatusNotFound, "NotFound", "no such topic subscription")
		return
	}
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	switch op {
	case "receive":
		s.receive(w, r)
	case "acknowledge", "release", "reject", "renewLock":
		s.settle(w, r, op)
	default:
		fail(w, http.StatusNotFound, "NotFound", fmt.Sprintf("operation %q", op))
	}
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request) {
	maxEvents, err := intParam(r, "maxEvents", 1, 1, 100)
	if err == nil {
		var wait int
		wait, err = intParam(r, "maxWaitTime", 60, 10, 120)
		deadline := time.Now().Add(time.Duration(wait) * time.Second)
		if s.WaitCap > 0 {
			deadline = time.Now().Add(min(s.WaitCap, time.Duration(wait)*time.Second))
		}
		if err == nil {
			s.respond(w, r.Context(), maxEvents, deadline)
			return
		}
	}
	fail(w, http.StatusBadRequest, "BadRequest", err.Error())
}

type detail struct {
	BrokerProperties struct {
		LockToken     string `json:"lockToken"`
		DeliveryCount int    `json:"deliveryCount"`
	} `json:"brokerProperties"`
	Event json.RawMessage `json:"event"`
}

// respond long-polls until events are available or the wait is over.
func (s *Server) respond(w http.ResponseWriter, ctx context.Context, maxEvents int, deadline time.Time) {
	for {
		out := s.lock(maxEvents)
		if len(out) > 0 || !time.Now().Before(deadline) {
			writeJSON(w, map[string]any{"value": out})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lock hands out up to n available events, dead-lettering those past the
// max delivery count.
func (s *Server) lock(n int) []detail {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	maxDeliveries := s.MaxDeliveryCount
	if maxDeliveries <= 0 {
		maxDeliveries = 10
	}
	lockFor := s.LockDuration
	if lockFor <= 0 {
		lockFor = time.Minute
	}
	var out []detail
	kept := s.entries[:0]
	for _, e := range s.entries {
		if e.token != "" && now.After(e.lockedUntil) {
			e.token = "" // the lock expired: the event is available again
		}
		if e.token == "" && !now.Before(e.availableAt) && len(out) < n {
			if e.deliveries >= maxDeliveries {
				s.dead = append(s.dead, e.id)
				continue
			}
			e.deliveries++
			e.token = newToken()
			e.lockedUntil = now.Add(lockFor)
			var d detail
			d.BrokerProperties.LockToken, d.BrokerProperties.DeliveryCount, d.Event = e.token, e.deliveries, e.event
			out = append(out, d)
		}
		kept = append(kept, e)
	}
	s.entries = kept
	return out
}

type failedToken struct {
	LockToken string `json:"lockToken"`
	Error     struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (s *Server) settle(w http.ResponseWriter, r *http.Request, op string) {
	var body struct {
		LockTokens []string `json:"lockTokens"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.LockTokens) == 0 || len(body.LockTokens) > 100 {
		fail(w, http.StatusBadRequest, "BadRequest", "the body must hold 1 to 100 lockTokens")
		return
	}
	var delay time.Duration
	if op == "release" {
		v := r.URL.Query().Get("releaseDelayInSeconds")
		switch v {
		case "", "0", "10", "60", "600", "3600":
			n, _ := strconv.Atoi(v)
			delay = time.Duration(n) * time.Second
		default:
			fail(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("releaseDelayInSeconds %q is not one of 0, 10, 60, 600, 3600", v))
			return
		}
		s.mu.Lock()
		s.delays = append(s.delays, v)
		s.mu.Unlock()
	}
	succeeded, failed := []string{}, []failedToken{}
	s.mu.Lock()
	now := s.now()
	for _, tok := range body.LockTokens {
		i := s.find(tok, now)
		if i < 0 {
			f := failedToken{LockToken: tok}
			f.Error.Code, f.Error.Message = "TokenLost", "the lock token is unknown or its lock expired"
			failed = append(failed, f)
			continue
		}
		e := s.entries[i]
		switch op {
		case "acknowledge":
			s.acked = append(s.acked, e.id)
			s.entries = append(s.entries[:i], s.entries[i+1:]...)
		case "reject":
			s.dead = append(s.dead, e.id)
			s.entries = append(s.entries[:i], s.entries[i+1:]...)
		case "release":
			e.token, e.availableAt = "", now.Add(delay)
		case "renewLock":
			lockFor := s.LockDuration
			if lockFor <= 0 {
				lockFor = time.Minute
			}
			e.lockedUntil = now.Add(lockFor)
		}
		succeeded = append(succeeded, tok)
	}
	s.mu.Unlock()
	writeJSON(w, map[string]any{"succeededLockTokens": succeeded, "failedLockTokens": failed})
}

// find returns the index of the entry locked by tok, if the lock holds.
func (s *Server) find(tok string, now time.Time) int {
	for i, e := range s.entries {
		if e.token == tok && !now.After(e.lockedUntil) {
			return i
		}
	}
	return -1
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q is not between %d and %d", name, v, lo, hi)
	}
	return n, nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
