package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// versionsByKey scores one request per key and returns who answered.
func versionsByKey(t *testing.T, a *Agent, keys []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		rec := do(a.Handler(), "POST", "/score/m", goodRow, HeaderRouteKey, k)
		if rec.Code != 200 {
			t.Fatalf("score = %d %s", rec.Code, rec.Body)
		}
		out[k] = rec.Header().Get(HeaderVersion)
	}
	return out
}

func TestStickyKeys(t *testing.T) {
	a := abAgent(t, t.TempDir()) // 1: buckets 0-89, 2: buckets 90-99
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("machine-%d", i)
	}
	before := versionsByKey(t, a, keys)
	if again := versionsByKey(t, a, keys); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatal("the same keys landed on other versions with the same split")
	}
	on2 := 0
	for _, v := range before {
		if v == "2" {
			on2++
		}
	}
	if on2 < 140 || on2 > 260 { // 10% of 2000 keys, hash permitting
		t.Errorf("%d of 2000 keys on the 10%% version", on2)
	}

	// 2 goes from 10 to 50: buckets 50-89 change hands, nothing else moves.
	if err := a.SetTraffic(context.Background(), "m", map[string]int{"1": 50, "2": 50}); err != nil {
		t.Fatal(err)
	}
	after := versionsByKey(t, a, keys)
	moved := 0
	for _, k := range keys {
		b := bucket("m", k)
		inBand := b >= 50 && b < 90
		switch {
		case inBand && (before[k] != "1" || after[k] != "2"):
			t.Errorf("key %s in bucket %d: %s -> %s, want 1 -> 2", k, b, before[k], after[k])
		case !inBand && after[k] != before[k]:
			t.Errorf("key %s in bucket %d moved %s -> %s, outside the changed band", k, b, before[k], after[k])
		case inBand:
			moved++
		}
	}
	if moved < 600 || moved > 1000 {
		t.Errorf("%d of 2000 keys moved, want about 40%%", moved)
	}
	// Stickiness is a function of the split: going back restores it.
	if err := a.SetTraffic(context.Background(), "m", map[string]int{"1": 90, "2": 10}); err != nil {
		t.Fatal(err)
	}
	if back := versionsByKey(t, a, keys); fmt.Sprint(back) != fmt.Sprint(before) {
		t.Error("the keys did not return to their versions with the original split")
	}
}

func TestBucketSpreadsSimilarKeys(t *testing.T) {
	var hits [100]int
	for i := range 100000 {
		hits[bucket("bearing-failure", fmt.Sprintf("line-%d", i))]++
	}
	for b, n := range hits {
		if n < 800 || n > 1200 { // 1000 expected, σ ≈ 31
			t.Errorf("bucket %d got %d of 100,000 keys", b, n)
		}
	}
	if bucket("ab", "c") == bucket("a", "bc") && bucket("ab", "x") == bucket("a", "bx") {
		t.Error("the model name and the key run together")
	}
}

func TestPinnedVersion(t *testing.T) {
	a := abAgent(t, t.TempDir())
	v3 := fakeArtifact(5, 1, 1, 1)
	mustDeploy(t, a, asShadow(deployReq("m", "3", v3)), v3)
	if err := a.SetTraffic(context.Background(), "m", map[string]int{"1": 0, "2": 100, "3": 0}); err != nil {
		t.Fatal(err)
	}
	h := a.Handler()
	for _, v := range []string{"1", "2", "3"} {
		rec := do(h, "POST", "/score/m", goodRow, HeaderVersion, v, HeaderRouteKey, "ignored-when-pinned")
		var got scoreResponse
		json.Unmarshal(rec.Body.Bytes(), &got)
		if rec.Code != 200 || got.Version != v || rec.Header().Get(HeaderVersion) != v || got.Shadow != (v == "3") {
			t.Errorf("pinned to %s: %d %s (header %q)", v, rec.Code, rec.Body, rec.Header().Get(HeaderVersion))
		}
	}
	rec := do(h, "POST", "/score/m", goodRow, HeaderVersion, "9")
	code, msg := errorBody(t, rec)
	if rec.Code != 404 || code != "not_found" || !strings.Contains(msg, `version "9" of model "m" is not loaded at site "site-1"; loaded: "1", "2", "3"`) {
		t.Errorf("pinned to an unloaded version: %d %q %q", rec.Code, code, msg)
	}
	if rec.Header().Get(HeaderVersion) != "" {
		t.Error("a 404 names a version that answered")
	}
}

// TestSetTrafficDuringScoring changes the split under load: every request
// succeeds (run with -race).
func TestSetTrafficDuringScoring(t *testing.T) {
	a := abAgent(t, t.TempDir())
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				rec := do(a.Handler(), "POST", "/score/m", goodRow, HeaderRouteKey, fmt.Sprint(g, i))
				if rec.Code != 200 {
					t.Errorf("status during a split change = %d %s", rec.Code, rec.Body)
					return
				}
			}
		})
	}
	for i := range 50 {
		w := i % 101
		if err := a.SetTraffic(context.Background(), "m", map[string]int{"1": 100 - w, "2": w}); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
}
