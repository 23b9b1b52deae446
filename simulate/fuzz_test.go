package simulate

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// FuzzHandler sends any body to the simulator's control API (POST /drift,
// POST /fail): a 200 that did exactly what the body asked (the drift is
// the requested shift; the machine is failing or not as requested), or a
// 4xx that changed nothing.
func FuzzHandler(f *testing.F) {
	f.Add([]byte(`{"shift":0.5,"model":"bearing-failure"}`))
	f.Add([]byte(`{"shift":-10}`))
	f.Add([]byte(`{"shift":1e309}`))
	f.Add([]byte(`{"machine":"line-1-m01","failing":true}`))
	f.Add([]byte(`{"machine":"nosuch","failing":true}`))
	f.Add([]byte(`{"model":"other","shift":1}`))
	f.Add([]byte(`{"shift":1,"extra":2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := New(Config{Site: "s1", Machines: 2, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		h := l.Handler()
		for _, path := range []string{"/drift", "/fail"} {
			before := l.Stats()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
			after := l.Stats()
			switch c := rec.Code; {
			case c == http.StatusOK && path == "/drift":
				var req DriftRequest
				if err := json.Unmarshal(body, &req); err != nil {
					t.Fatalf("200 for a body that is not a drift request: %v", err)
				}
				if math.IsNaN(req.Shift) || math.Abs(req.Shift) > 10 || after.Drift != req.Shift {
					t.Fatalf("200: drift %v for shift %v", after.Drift, req.Shift)
				}
			case c == http.StatusOK && path == "/fail":
				var req FailRequest
				if err := json.Unmarshal(body, &req); err != nil {
					t.Fatalf("200 for a body that is not a fail request: %v", err)
				}
				if slices.Contains(after.Failing, req.Machine) != req.Failing {
					t.Fatalf("200: failing %v after %+v", after.Failing, req)
				}
			case c == http.StatusBadRequest || c == http.StatusNotFound:
				if after.Drift != before.Drift && !(math.IsNaN(after.Drift) && math.IsNaN(before.Drift)) || !slices.Equal(after.Failing, before.Failing) {
					t.Fatalf("%s %d changed the line: %+v → %+v", path, c, before, after)
				}
				var e struct{ Error, Message string }
				if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Message == "" {
					t.Fatalf("%s %d without a message: %s", path, c, rec.Body)
				}
			default:
				t.Fatalf("%s: status %d: %s", path, c, rec.Body)
			}
		}
	})
}
