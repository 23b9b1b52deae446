package modelfleet_test

import (
	"testing"

	"github.com/modelfleet/modelfleet"
)

// TestWithReports: a site serving the released version says so before
// its batch completes; the release's own verdicts stay.
func TestWithReports(t *testing.T) {
	ref := modelfleet.ModelRef{Name: "m", Version: "2"}
	serving := func(v string) []modelfleet.ServedModel {
		return []modelfleet.ServedModel{{ModelRef: modelfleet.ModelRef{Name: "m", Version: v}, LoadedAt: "2026-12-05T12:00:00Z"}}
	}
	st := modelfleet.ReleaseStatus{Model: ref, Sites: []modelfleet.SiteStatus{
		{Site: "a", State: modelfleet.SiteDeploying},
		{Site: "b", State: modelfleet.SiteDeploying},
		{Site: "c", State: modelfleet.SiteFailed, Reason: "load failed"},
		{Site: "d", State: modelfleet.SitePending},
	}}
	sites := map[string]modelfleet.Site{
		"a": {ID: "a", Serving: serving("2")},
		"b": {ID: "b", Serving: serving("1")},
		"c": {ID: "c", Serving: serving("2")},
	}
	got := st.WithReports(sites)
	for i, want := range []string{modelfleet.SiteServing, modelfleet.SiteDeploying, modelfleet.SiteFailed, modelfleet.SitePending} {
		if got.Sites[i].State != want {
			t.Errorf("site %s: %s, want %s", got.Sites[i].Site, got.Sites[i].State, want)
		}
	}
	if got.Sites[0].UpdatedAt != "2026-12-05T12:00:00Z" {
		t.Errorf("serving since %q, want the site's loadedAt", got.Sites[0].UpdatedAt)
	}
	if st.Sites[0].State != modelfleet.SiteDeploying {
		t.Error("WithReports changed the status it was given")
	}
}
