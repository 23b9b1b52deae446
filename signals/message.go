package signals

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// Schema versions. A consumer rejects any other: a message it cannot read
// is dead-lettered with reason ReasonUnknownSchema, never half-understood.
const (
	SchemaVersion      = "modelfleet.signal/v1"
	BatchSchemaVersion = "modelfleet.signal-batch/v1"
	// ContentType is set on every queue message carrying a signal or batch.
	ContentType = "application/json"
)

// LatencyBoundsMs are the upper bounds (inclusive, milliseconds) of the
// latency histogram buckets; Message.LatencyMs has one more count, for
// everything slower. They are part of schema v1: changing them is a new
// schema version, because the monitor adds histograms bucket by bucket.
var LatencyBoundsMs = [...]float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500}

// NumLatencyBuckets is len(Message.LatencyMs).
const NumLatencyBuckets = len(LatencyBoundsMs) + 1

// Message is one site's figures for one model version over one window. See
// docs/signals.md for the contract; the JSON names are the schema.
type Message struct {
	SchemaVersion string `json:"schemaVersion"`
	// MessageID is MessageID(Site, Model, Version, WindowStart): a re-sent
	// message has the same ID, so queue duplicate detection and the monitor
	// both drop the copy.
	MessageID   string    `json:"messageId"`
	Site        string    `json:"site"`
	Model       string    `json:"model"`
	Version     string    `json:"version"`
	WindowStart time.Time `json:"windowStart"` // RFC 3339, millisecond precision
	WindowEnd   time.Time `json:"windowEnd"`
	// Baseline is the digest of the Baseline whose bins the histograms use;
	// empty when the site had none (then there are no histograms).
	Baseline string `json:"baseline,omitempty"`

	// Requests counts score requests answered by this version: Scored +
	// Errors.
	Requests int64 `json:"requests"`
	Scored   int64 `json:"scored"`
	Errors   int64 `json:"errors"`
	// ErrorCodes splits Errors by error code ("invalid", "internal", ...).
	ErrorCodes map[string]int64 `json:"errorCodes,omitempty"`
	// Rejected counts requests whose feature row was invalid (missing,
	// null or non-numeric features); they are among Errors, and their
	// problems are counted per feature in Nulls and TypeErrors.
	Rejected int64 `json:"rejected"`
	// LatencyMs counts requests by latency bucket (LatencyBoundsMs).
	LatencyMs []int64 `json:"latencyMs"`

	Features   []FeatureHistogram `json:"features,omitempty"`
	Prediction *Histogram         `json:"prediction,omitempty"`
}

// Histogram counts values over the fixed bins of a baseline feature. For a
// numerical feature with edges e[0..k], Counts has k+2 entries: values below
// e[0], the k bins [e[i-1], e[i]) (the last one closed), and values above
// e[k]; the first and last are out of the baseline's bounds. For a
// categorical feature with categories c[0..k-1], Counts has k+1 entries:
// one per category, and last every value not seen in the baseline.
type Histogram struct {
	Counts []int64 `json:"counts"`
	// Sum of the values counted, for their mean.
	Sum float64 `json:"sum"`
	// BelowSum and AboveSum sum the values below and above the baseline's
	// range (numerical only): where out-of-bounds mass sits, which the
	// Wasserstein distance needs and a bin count alone does not say.
	BelowSum float64 `json:"belowSum,omitempty"`
	AboveSum float64 `json:"aboveSum,omitempty"`
	// Min and Max are the least and the greatest value counted (a NaN
	// aside): how far out of the baseline's range values went, which the
	// out-of-bounds count alone does not say. Optional, both or neither:
	// absent when nothing was counted, and from agents that predate them.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// Range returns Min and Max, and whether the histogram has them.
func (h *Histogram) Range() (lo, hi float64, ok bool) {
	if h.Min == nil || h.Max == nil {
		return 0, 0, false
	}
	return *h.Min, *h.Max, true
}

// FeatureHistogram is one input feature's histogram and data-quality counts.
type FeatureHistogram struct {
	Name string `json:"name"`
	Histogram
	// Nulls counts rejected rows where the feature was missing or null;
	// TypeErrors those where it was not a number.
	Nulls      int64 `json:"nulls,omitempty"`
	TypeErrors int64 `json:"typeErrors,omitempty"`
}

// Batch carries several messages in one queue message, oldest first. The
// Sender batches a backlog (a site back online), so that the number of
// queue operations, each a durable commit, does not grow with it.
type Batch struct {
	SchemaVersion string    `json:"schemaVersion"` // BatchSchemaVersion
	Messages      []Message `json:"messages"`
}

// MessageID derives a message's ID from what identifies its window: the
// first 16 bytes of sha256(site, model, version, window start in unix
// milliseconds), hex, prefixed "sig-". The fields are NUL-separated: names
// cannot contain NUL, so two different tuples never hash the same input.
func MessageID(site, model, version string, windowStart time.Time) string {
	h := sha256.New()
	for _, s := range [...]string{site, model, version} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(windowStart.UnixMilli()))
	h.Write(ms[:])
	var sum [sha256.Size]byte
	return "sig-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// BatchID derives a batch's queue message ID from the IDs it carries, so a
// batch re-sent after a failed attempt is dropped by duplicate detection.
func BatchID(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	return "sigb-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// windowTime is how window bounds are kept: UTC, millisecond precision,
// so that a message re-encoded and decoded keeps its ID.
func windowTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// OutOfBounds counts the values of h outside the baseline's range: the
// first and last counts of a numerical histogram, the last of a
// categorical one.
func (h *Histogram) OutOfBounds(categorical bool) int64 {
	n := len(h.Counts)
	switch {
	case n == 0:
		return 0
	case categorical:
		return h.Counts[n-1]
	case n == 1:
		return h.Counts[0]
	}
	return h.Counts[0] + h.Counts[n-1]
}
