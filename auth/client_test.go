package auth

import (
	"net/http"
	"slices"
	"testing"
)

type wrapped struct{ next http.RoundTripper }

func (w wrapped) RoundTrip(r *http.Request) (*http.Response, error) { return w.next.RoundTrip(r) }

// A program that wraps http.DefaultTransport (a metering or tracing
// RoundTripper) can still build the gateway's TLS transports.
func TestTLSTransportWithAWrappedDefaultTransport(t *testing.T) {
	orig := http.DefaultTransport
	http.DefaultTransport = wrapped{orig}
	defer func() { http.DefaultTransport = orig }()
	tr, err := TLSTransport(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Proxy == nil || tr.DialContext == nil || tr.TLSHandshakeTimeout == 0 {
		t.Fatalf("transport lacks the standard defaults: %+v", tr)
	}
}

// A busy fleet's routine traffic does not push a control or a denial out
// of the records the dashboard shows.
func TestRecentAuditKeepsControlsUnderRoutineTraffic(t *testing.T) {
	var g Guard
	g.recent.add(AuditRecord{Allowed: true, Who: "alice", Action: "approve", Object: "release/m/2", Why: "release.approve"})
	g.recent.add(AuditRecord{Who: "mallory", Action: "PUT /api/policies/m", Why: "forbidden"})
	for range 5 * RecentAudit {
		g.recent.add(AuditRecord{Allowed: true, Who: "site-1", Action: "PUT /api/sites/site-1/actual", Why: string(SiteSelf)})
		g.recent.add(AuditRecord{Allowed: true, Who: "bob", Action: "GET /api/sites", Why: "sites.read"})
	}
	recs := g.RecentAudit()
	if len(recs) != RecentAudit+2 {
		t.Fatalf("%d records kept, want %d routine and the 2 notable", len(recs), RecentAudit)
	}
	var notable []string
	for _, r := range recs {
		if !r.Routine() {
			notable = append(notable, r.Who)
		}
	}
	slices.Sort(notable)
	if !slices.Equal(notable, []string{"alice", "mallory"}) {
		t.Errorf("notable records kept: %v, want alice's approval and mallory's denial", notable)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].At.After(recs[i-1].At) {
			t.Fatalf("records not newest first at %d", i)
		}
	}
}
