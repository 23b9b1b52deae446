package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func ptr(n int) *int { return &n }

// withWeight is req deployed beside the loaded versions with weight w.
func withWeight(req DeployRequest, w int) DeployRequest {
	req.Weight = ptr(w)
	return req
}

func asShadow(req DeployRequest) DeployRequest {
	req.Shadow = true
	return req
}

// abAgent serves model "m": version 1 with 90% of the traffic, version 2
// with 10%.
func abAgent(t *testing.T, dir string) *Agent {
	t.Helper()
	a := openAgent(t, dir)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(0, -1, -1, -1)
	mustDeploy(t, a, deployReq("m", "1", v1), v1)
	mustDeploy(t, a, withWeight(deployReq("m", "2", v2), 10), v2)
	return a
}

func wantTraffic(t *testing.T, a *Agent, model string, want map[string]int) {
	t.Helper()
	if got := a.Traffic(model); !maps.Equal(got, want) {
		t.Fatalf("traffic of %s = %v, want %v", model, got, want)
	}
}

// count scores n requests and counts the versions that answered.
func count(t *testing.T, a *Agent, n int, header ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		rec := do(a.Handler(), "POST", "/score/m", goodRow, header...)
		if rec.Code != 200 {
			t.Fatalf("score = %d %s", rec.Code, rec.Body)
		}
		got[rec.Header().Get(HeaderVersion)]++
	}
	return got
}

func TestWeightsAreHonoured(t *testing.T) {
	a := abAgent(t, t.TempDir())
	wantTraffic(t, a, "m", map[string]int{"1": 90, "2": 10})
	// 10% of 10,000 has a standard deviation of 30: ±2% is more than 6σ.
	got := count(t, a, 10000)
	if got["2"] < 800 || got["2"] > 1200 || got["1"]+got["2"] != 10000 {
		t.Errorf("versions over 10,000 requests at 90/10 = %v", got)
	}
}

func TestDeployWithWeightOrShadow(t *testing.T) {
	dir := t.TempDir()
	a := abAgent(t, dir)
	v2, v3 := fakeArtifact(0, -1, -1, -1), fakeArtifact(1, 1, 1, 1)

	// A retried weighted deploy changes nothing and fetches nothing.
	res, err := a.Deploy(context.Background(), withWeight(deployReq("m", "2", v2), 10), noFetch(t))
	if err != nil || res.Changed {
		t.Fatalf("retried weighted deploy = %+v, %v; want unchanged", res, err)
	}
	// A third version at 20%: the others share the other 80 in proportion.
	mustDeploy(t, a, withWeight(deployReq("m", "3", v3), 20), v3)
	wantTraffic(t, a, "m", map[string]int{"1": 72, "2": 8, "3": 20})
	// Changing a loaded version's weight needs no download.
	if _, err := a.Deploy(context.Background(), withWeight(deployReq("m", "3", v3), 100), noFetch(t)); err != nil {
		t.Fatal(err)
	}
	wantTraffic(t, a, "m", map[string]int{"1": 0, "2": 0, "3": 100}) // still loaded, for a rollback
	// A shadow takes nothing from the others.
	if _, err := a.Deploy(context.Background(), asShadow(deployReq("m", "2", v2)), noFetch(t)); err != nil {
		t.Fatal(err)
	}
	if vs := a.router.Versions("m"); !vs[1].Shadow || vs[1].Weight != 0 || vs[2].Weight != 100 {
		t.Errorf("versions after shadow deploy = %+v", vs)
	}
	// Without a weight, the original behaviour: all the traffic, alone.
	if _, err := a.Deploy(context.Background(), deployReq("m", "1", fakeArtifact(0, 1, 1, 1)), noFetch(t)); err != nil {
		t.Fatal(err)
	}
	wantTraffic(t, a, "m", map[string]int{"1": 100})
	if n := len(a.store.State().Models); n != 1 {
		t.Errorf("state lists %d versions, want 1", n)
	}
}

func TestDeployRejectsImpossibleSplits(t *testing.T) {
	a := openAgent(t, t.TempDir())
	data := fakeArtifact(0, 1, 1, 1)
	for name, req := range map[string]DeployRequest{
		"weight on a new model": withWeight(deployReq("m", "1", data), 10),
		"shadow on a new model": asShadow(deployReq("m", "1", data)),
		"weight over 100":       withWeight(deployReq("m", "1", data), 101),
		"negative weight":       withWeight(deployReq("m", "1", data), -1),
		"weighted shadow":       withWeight(asShadow(deployReq("m", "1", data)), 5),
	} {
		t.Run(name, func(t *testing.T) {
			f := &fetcher{data: data}
			_, err := a.Deploy(context.Background(), req, f.fetch)
			if code := modelfleet.ErrorCode(err); code != modelfleet.EINVALID {
				t.Errorf("Deploy = %v (code %q), want %q", err, code, modelfleet.EINVALID)
			}
			if f.calls.Load() != 0 {
				t.Error("an impossible split was downloaded first")
			}
		})
	}
	if s := a.Served(); len(s) != 0 {
		t.Errorf("served = %+v, want nothing", s)
	}
	// With a version taking traffic, the same shadow is fine.
	mustDeploy(t, a, deployReq("m", "1", data), data)
	v2 := fakeArtifact(2, 1, 1, 1)
	mustDeploy(t, a, asShadow(deployReq("m", "2", v2)), v2)
	wantTraffic(t, a, "m", map[string]int{"1": 100, "2": 0})
}

func TestSetTraffic(t *testing.T) {
	a := abAgent(t, t.TempDir())
	ctx := context.Background()
	if err := a.SetTraffic(ctx, "m", map[string]int{"1": 50, "2": 50}); err != nil {
		t.Fatal(err)
	}
	wantTraffic(t, a, "m", map[string]int{"1": 50, "2": 50})
	// Leaving 1 out unloads it; it stays on disk.
	if err := a.SetTraffic(ctx, "m", map[string]int{"2": 100}); err != nil {
		t.Fatal(err)
	}
	wantTraffic(t, a, "m", map[string]int{"2": 100})
	// Rolling back to it loads it from disk: SetTraffic has no way to fetch.
	if err := a.SetTraffic(ctx, "m", map[string]int{"1": 100, "2": 0}); err != nil {
		t.Fatal(err)
	}
	wantTraffic(t, a, "m", map[string]int{"1": 100, "2": 0})
	if got := count(t, a, 100); got["1"] != 100 {
		t.Errorf("versions after rollback = %v", got)
	}

	for name, c := range map[string]struct {
		model   string
		weights map[string]int
		code    string
	}{
		"sum below 100":   {"m", map[string]int{"1": 50, "2": 40}, modelfleet.EINVALID},
		"sum above 100":   {"m", map[string]int{"1": 100, "2": 1}, modelfleet.EINVALID},
		"negative":        {"m", map[string]int{"1": 110, "2": -10}, modelfleet.EINVALID},
		"no versions":     {"m", nil, modelfleet.EINVALID},
		"bad version":     {"m", map[string]int{"../1": 100}, modelfleet.EINVALID},
		"bad model":       {"../m", map[string]int{"1": 100}, modelfleet.EINVALID},
		"not installed":   {"m", map[string]int{"1": 50, "7": 50}, modelfleet.ENOTFOUND},
		"model not known": {"pump", map[string]int{"1": 100}, modelfleet.ENOTFOUND},
	} {
		t.Run(name, func(t *testing.T) {
			err := a.SetTraffic(ctx, c.model, c.weights)
			if code := modelfleet.ErrorCode(err); code != c.code {
				t.Errorf("SetTraffic = %v (code %q), want %q", err, code, c.code)
			}
			wantTraffic(t, a, "m", map[string]int{"1": 100, "2": 0})
		})
	}
}

func TestRestartKeepsWeights(t *testing.T) {
	dir := t.TempDir()
	a := abAgent(t, dir)
	v3 := fakeArtifact(1, 1, 1, 1)
	mustDeploy(t, a, asShadow(deployReq("m", "3", v3)), v3)
	if err := a.SetTraffic(context.Background(), "m", map[string]int{"1": 30, "2": 70, "3": 0}); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for i := range 200 {
		key := fmt.Sprintf("line-%d", i)
		before[key] = do(a.Handler(), "POST", "/score/m", goodRow, HeaderRouteKey, key).Header().Get(HeaderVersion)
	}

	b := openAgent(t, dir)
	wantTraffic(t, b, "m", map[string]int{"1": 30, "2": 70, "3": 0})
	if vs := b.router.Versions("m"); !vs[2].Shadow {
		t.Errorf("version 3 after restart = %+v, want a shadow", vs[2])
	}
	for key, v := range before {
		if got := do(b.Handler(), "POST", "/score/m", goodRow, HeaderRouteKey, key).Header().Get(HeaderVersion); got != v {
			t.Errorf("key %s went to %s before the restart and to %s after", key, v, got)
		}
	}
	// state.json says so, for a person reading it.
	raw, _ := os.ReadFile(filepath.Join(dir, "state.json"))
	var st State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range st.Models {
		got = append(got, fmt.Sprintf("%s:%d:%v", e.Version, *e.Weight, e.Shadow))
	}
	if want := []string{"1:30:false", "2:70:false", "3:0:true"}; !slices.Equal(got, want) {
		t.Errorf("state.json versions = %q, want %q", got, want)
	}
}

func TestRestartWithoutAVersionSharesItsTraffic(t *testing.T) {
	dir := t.TempDir()
	a := abAgent(t, dir)
	v3 := fakeArtifact(1, 1, 1, 1)
	if err := a.SetTraffic(context.Background(), "m", map[string]int{"1": 60, "2": 40}); err != nil {
		t.Fatal(err)
	}
	mustDeploy(t, a, withWeight(deployReq("m", "3", v3), 0), v3)
	os.Remove(a.store.Path(modelfleet.ModelRef{Name: "m", Version: "2"}, digestOf(fakeArtifact(0, -1, -1, -1))))
	b := openAgent(t, dir)
	wantTraffic(t, b, "m", map[string]int{"1": 100, "3": 0}) // 3 at 0 is not promoted by it
}

func TestLegacyStateTakesAllTheTraffic(t *testing.T) {
	dir := t.TempDir()
	a := openAgent(t, dir)
	data := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", data), data)
	// A state.json from before traffic splitting has no weights.
	p := filepath.Join(dir, "state.json")
	raw, _ := os.ReadFile(p)
	legacy := strings.Replace(string(raw), `"weight": 100`, `"x": 0`, 1)
	if legacy == string(raw) {
		t.Fatalf("state.json has no weight: %s", raw)
	}
	os.WriteFile(p, []byte(legacy), 0o644)
	b := openAgent(t, dir)
	wantTraffic(t, b, "m", map[string]int{"1": 100})
}

func TestScale(t *testing.T) {
	for _, c := range []struct {
		weights []int
		total   int
		want    []int
	}{
		{[]int{90, 10}, 80, []int{72, 8}},
		{[]int{1, 1, 1}, 100, []int{34, 33, 33}},
		{[]int{50, 0, 50}, 99, []int{50, 0, 49}},
		{[]int{0, 0}, 100, []int{0, 0}},
		{[]int{7}, 100, []int{100}},
		{[]int{30, 70}, 0, []int{0, 0}},
		{nil, 100, []int{}},
	} {
		if got := scale(c.weights, c.total); !slices.Equal(got, c.want) {
			t.Errorf("scale(%v, %d) = %v, want %v", c.weights, c.total, got, c.want)
		}
	}
}

func TestAPIModelsListsWeights(t *testing.T) {
	a := abAgent(t, t.TempDir())
	v3 := fakeArtifact(1, 1, 1, 1)
	mustDeploy(t, a, asShadow(deployReq("m", "3", v3)), v3)
	var got []struct {
		Version string
		Weight  int
		Shadow  bool
	}
	if err := json.Unmarshal(do(a.Handler(), "GET", "/api/models", "").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "[{1 90 false} {2 10 false} {3 0 true}]" {
		t.Errorf("/api/models = %s", s)
	}
}

// After a start without one of its versions, a deploy that changes nothing
// in the router still writes state.json: the next start must not expect the
// missing version back.
func TestRetriedDeployRepairsStateAfterAFailedLoad(t *testing.T) {
	dir := t.TempDir()
	a := abAgent(t, dir)
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(0, -1, -1, -1)
	os.Remove(a.store.Path(modelfleet.ModelRef{Name: "m", Version: "2"}, digestOf(v2)))
	b := openAgent(t, dir)
	wantTraffic(t, b, "m", map[string]int{"1": 100})
	res, err := b.Deploy(context.Background(), deployReq("m", "1", v1), noFetch(t))
	if err != nil || !res.Changed {
		t.Fatalf("deploy = %+v, %v; want Changed", res, err)
	}
	if st := b.store.State(); len(st.Models) != 1 || st.Models[0].Version != "1" {
		t.Errorf("state = %+v, want version 1 alone", st.Models)
	}
}
