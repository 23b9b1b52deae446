package auth

import (
	"net/http"
	"slices"
	"strings"
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

// RecentAudit is how many audit records of each kind a guard keeps in
// memory for the dashboard: notable ones (denials, allowed changes by
// people) and routine ones (Routine); the log holds them all. Kept apart,
// a busy fleet's routine traffic never pushes the controls and denials
// out.
const RecentAudit = 200

// Routine reports whether r is the fleet's routine traffic: an allowed
// read, or an allowed request of a site or the cloud worker (reports,
// signals, steps), which pass the guard many times a minute.
func (r AuditRecord) Routine() bool {
	if !r.Allowed {
		return false
	}
	return r.Why == string(SiteSelf) || r.Why == string(FleetSteps) || strings.HasPrefix(r.Action, http.MethodGet+" ")
}

type auditRing struct {
	mu      sync.Mutex
	notable []AuditRecord
	routine []AuditRecord
}

func (a *auditRing) add(r AuditRecord) {
	r.At = time.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	ring := &a.notable
	if r.Routine() {
		ring = &a.routine
	}
	if len(*ring) == RecentAudit {
		*ring = slices.Delete(*ring, 0, 1)
	}
	*ring = append(*ring, r)
}

// RecentAudit returns this guard's latest audit records, newest first
// (this process's only: the log is the complete record): up to
// RecentAudit notable and RecentAudit routine ones.
func (g *Guard) RecentAudit() []AuditRecord {
	g.recent.mu.Lock()
	out := slices.Concat(g.recent.notable, g.recent.routine)
	g.recent.mu.Unlock()
	slices.SortStableFunc(out, func(a, b AuditRecord) int { return b.At.Compare(a.At) })
	return out
}
