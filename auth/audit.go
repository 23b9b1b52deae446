package auth

import (
	"slices"
	"sync"
	"time"
)

// AuditRecord is one decision the guard audited: every denial and every
// allowed change.
type AuditRecord struct {
	At      time.Time `json:"at"`
	Allowed bool      `json:"allowed"`
	Who     string    `json:"who"`
	Action  string    `json:"action"` // "POST /api/controls", or a control ("approve")
	Object  string    `json:"object,omitempty"`
	Why     string    `json:"why,omitempty"`
}

// RecentAudit is how many audit records a guard keeps in memory for the
// dashboard; the log holds them all.
const RecentAudit = 200

type auditRing struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (a *auditRing) add(r AuditRecord) {
	r.At = time.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.recs) == RecentAudit {
		a.recs = slices.Delete(a.recs, 0, 1)
	}
	a.recs = append(a.recs, r)
}

// RecentAudit returns this guard's latest audit records, newest first
// (this process's only: the log is the complete record).
func (g *Guard) RecentAudit() []AuditRecord {
	g.recent.mu.Lock()
	defer g.recent.mu.Unlock()
	out := slices.Clone(g.recent.recs)
	slices.Reverse(out)
	return out
}
