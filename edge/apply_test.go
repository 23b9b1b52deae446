package edge

import (
	"testing"

	"github.com/modelfleet/modelfleet"
)

// The control plane judges a bake window as the difference of two reports:
// every figure must be cumulative, latency must come in the bins it sums,
// and the epoch must say which run of the counters the figures belong to.
func TestStatsReportCumulativeCountersWithTheirEpoch(t *testing.T) {
	art := fakeArtifact(0, 1, 1, 1)
	dir := t.TempDir()
	a := openAgent(t, dir)
	mustDeploy(t, a, deployReq("bearing-failure", "1", art), art)
	h := a.Handler()
	score := func(ok, bad int) {
		for range ok {
			if rec := do(h, "POST", "/score/bearing-failure", goodRow); rec.Code != 200 {
				t.Fatalf("score: %d %s", rec.Code, rec.Body)
			}
		}
		for range bad {
			if rec := do(h, "POST", "/score/bearing-failure", `{"temp":"hot"}`); rec.Code != 400 {
				t.Fatalf("bad score: %d %s", rec.Code, rec.Body)
			}
		}
	}
	score(7, 3)
	first := a.Stats("bearing-failure")
	if len(first) != 1 {
		t.Fatalf("stats = %+v, want one version", first)
	}
	v := first[0]
	if v.Requests != 10 || v.Errors != 3 {
		t.Errorf("requests %d errors %d, want 10 and 3", v.Requests, v.Errors)
	}
	if got, want := len(v.Latency), len(modelfleet.LatencyBuckets)+1; got != want {
		t.Fatalf("latency bins = %d, want %d (LatencyBuckets and an overflow bin)", got, want)
	}
	if n := sum(v.Latency); n != 10 {
		t.Errorf("latency histogram counts %d requests, want 10", n)
	}
	if n := sum(v.Predictions); n != 7 {
		t.Errorf("prediction histogram counts %d, want the 7 scored", n)
	}
	if v.Epoch == 0 {
		t.Error("no epoch: the control plane could not tell a restart from a quiet window")
	}
	score(5, 1)
	second := a.Stats("bearing-failure")[0]
	if second.Requests != 16 || second.Errors != 4 || sum(second.Latency) != 16 || second.Epoch != v.Epoch {
		t.Errorf("after more traffic: requests %d errors %d latency %d epoch %d, want 16, 4, 16 and the same epoch %d",
			second.Requests, second.Errors, sum(second.Latency), second.Epoch, v.Epoch)
	}
	// A restarted agent counts from zero under a new epoch.
	a.Close()
	b := openAgent(t, dir)
	defer b.Close()
	after := b.Stats("bearing-failure")
	if len(after) != 1 || after[0].Requests != 0 || after[0].Epoch == v.Epoch {
		t.Errorf("after a restart: %+v, want zero requests under an epoch other than %d", after, v.Epoch)
	}
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}
