package workload

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelfleet/modelfleet/workload/spec"
)

// Decision is what the workload publishes for every sample it accepts, and
// what the site keeps a record of.
type Decision struct {
	Site            string             `json:"site"`
	Workload        string             `json:"workload"`
	WorkloadVersion string             `json:"workloadVersion"`
	Model           string             `json:"model"`
	ModelVersion    string             `json:"modelVersion,omitempty"`
	Machine         string             `json:"machine"`
	Seq             *int64             `json:"seq,omitempty"`
	SampleTime      time.Time          `json:"sampleTime"`
	Action          string             `json:"action"`
	Prediction      *float64           `json:"prediction,omitempty"`
	Label           *int               `json:"label,omitempty"`
	Features        map[string]float64 `json:"features,omitempty"`
	DecidedAt       time.Time          `json:"decidedAt"`
}

// DeadLetter is what the workload publishes for a message it cannot score.
type DeadLetter struct {
	Site            string    `json:"site"`
	Workload        string    `json:"workload"`
	WorkloadVersion string    `json:"workloadVersion"`
	Reason          string    `json:"reason"`
	Message         string    `json:"message"`
	Topic           string    `json:"topic"`
	Payload         string    `json:"payload"`                   // the message as received
	PayloadEncoding string    `json:"payloadEncoding,omitempty"` // "base64" when it was not UTF-8
	At              time.Time `json:"at"`
}

// Record keeps the last N decisions in memory: the site's local, bounded
// history, served at GET /decisions. It is shared across versions, so a
// swap does not empty it.
type Record struct {
	mu   sync.Mutex
	buf  []Decision
	next int
	n    int
}

// NewRecord returns a record of capacity n.
func NewRecord(n int) *Record {
	if n < 1 {
		n = spec.DefaultRecord
	}
	return &Record{buf: make([]Decision, n)}
}

// Add records d, dropping the oldest when full.
func (r *Record) Add(d Decision) {
	r.mu.Lock()
	r.buf[r.next] = d
	r.next = (r.next + 1) % len(r.buf)
	if r.n < len(r.buf) {
		r.n++
	}
	r.mu.Unlock()
}

// Recent returns up to limit decisions, newest first.
func (r *Record) Recent(limit int) []Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	if limit <= 0 || limit > r.n {
		limit = r.n
	}
	out := make([]Decision, 0, limit)
	for i := 1; i <= limit; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// ServeHTTP answers GET /decisions?limit=N (default 100), newest first.
func (r *Record) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	limit := 100
	if s := req.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid", "message": "limit must be a positive integer"})
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, r.Recent(limit))
}
