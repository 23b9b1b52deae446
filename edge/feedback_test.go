package edge

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFeedbackCountsLabelledPredictions(t *testing.T) {
	_, h := newTestRouter(t, "k1")
	auth := []string{"Authorization", "Bearer k1"}
	// goodRow scores above 0.5 (label 1), the second row below (label 0).
	for id, row := range map[string]string{"m1-17": goodRow, "m1-18": `{"temp":-9,"vibration":-9,"rpm":-9}`} {
		if rec := do(h, "POST", "/score/bearing-failure", row, append(auth, HeaderRequestID, id)...); rec.Code != 200 {
			t.Fatalf("score %s: %d %s", id, rec.Code, rec.Body)
		}
	}
	do(h, "POST", "/score/bearing-failure", goodRow, auth...) // not identified: nothing remembered

	post := func(body string, header ...string) (int, map[string]any) {
		rec := do(h, "POST", "/feedback/bearing-failure", body, header...)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	if code, out := post(`{"requestId":"m1-17","label":1}`, auth...); code != 200 || out["correct"] != true || out["version"] != "1" {
		t.Fatalf("right label: %d %v", code, out)
	}
	if code, out := post(`{"requestId":"m1-18","label":1}`, auth...); code != 200 || out["correct"] != false {
		t.Fatalf("wrong label: %d %v", code, out)
	}
	if code, out := post(`{"requestId":"m1-17","label":1}`, auth...); code != 404 || !strings.Contains(out["message"].(string), "counts once") {
		t.Errorf("second label for one prediction: %d %v, want 404", code, out)
	}
	for body, want := range map[string]int{
		`{"requestId":"m1-99","label":1}`:       404,
		`{"requestId":"m1-18","label":2}`:       400,
		`{"requestId":"","label":1}`:            400,
		`{"requestId":"x","label":1,"extra":1}`: 400,
		`not json`:                              400,
	} {
		if code, _ := post(body, auth...); code != want {
			t.Errorf("%s: %d, want %d", body, code, want)
		}
	}
	if code, _ := post(`{"requestId":"m1-18","label":1}`); code != 401 {
		t.Errorf("feedback without a key: %d, want 401", code)
	}
	metrics := do(h, "GET", "/metrics", "").Body.String()
	for _, want := range []string{
		`modelfleet_edge_feedback_total{model="bearing-failure",outcome="correct",site="site-1",version="1"} 1`,
		`modelfleet_edge_feedback_total{model="bearing-failure",outcome="wrong",site="site-1",version="1"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestOutcomesForgetTheOldest(t *testing.T) {
	o := newOutcomes(2)
	o.record("m", "a", "1", 1, 0.9)
	o.record("m", "b", "1", 0, 0.1)
	o.record("m", "c", "2", 1, 0.8)
	if _, ok := o.take("m", "a"); ok {
		t.Error("the oldest prediction is still remembered past the capacity")
	}
	if out, ok := o.take("m", "c"); !ok || out.version != "2" || out.label != 1 {
		t.Errorf("newest: %+v %v", out, ok)
	}
}
