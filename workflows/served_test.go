package workflows

import (
	"testing"

	"github.com/modelfleet/modelfleet"
)

// TestReleaseCarriesTheModelServer: a version served by an external model
// server reaches every step's desired version with its server, as
// registered; a registered server block that does not validate stops the
// release before any site is touched.
func TestReleaseCarriesTheModelServer(t *testing.T) {
	h := newHarness(t, twoWaves, sites("c1"), sites("f1"))
	h.report.Model.Format = modelfleet.FormatOIP
	h.report.Model.Properties = map[string]string{modelfleet.PropServer: `{"name":"triton","model":"bearing","task":"regression"}`}
	st, err := h.run()
	if err != nil || st.State != modelfleet.StateSucceeded {
		t.Fatalf("release: %v %s", err, st.State)
	}
	for _, s := range h.steps {
		if s.New.Format != modelfleet.FormatOIP || s.New.Server == nil || s.New.Server.Name != "triton" || s.New.Server.Task != modelfleet.TaskRegression {
			t.Fatalf("step %+v carries server %+v", s.Sites, s.New.Server)
		}
	}

	h = newHarness(t, twoWaves, sites("c1"), sites("f1"))
	h.report.Model.Format = modelfleet.FormatOIP
	h.report.Model.Properties = map[string]string{modelfleet.PropServer: `{"name":"triton","model":"../x","task":"binary"}`}
	if _, err := h.run(); err == nil || len(h.steps) != 0 {
		t.Errorf("a bad server block: error %v after %d steps", err, len(h.steps))
	}
}
