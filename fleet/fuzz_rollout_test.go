package fleet

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// FuzzRolloutHandler sends any body to the release engine's endpoints (a
// step, a rollback, a finish, a progress read) a policy and a pairings read: a clear 4xx or
// a success, never a panic or a 500.
func FuzzRolloutHandler(f *testing.F) {
	f.Add([]byte(`{"release":"r","model":"m","new":{"version":"2","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","format":"lightgbm","weight":10,"size":3,"statement":{"payloadType":"x","payload":"AA==","signatures":[]}},"sites":["s1"]}`))
	f.Add([]byte(`{"release":"r","model":"m","sites":["s1","nosuch"]}`))
	f.Add([]byte(`{"model":"m","version":"2","sites":["s1"]}`))
	f.Add([]byte("waves:\n  - {name: all, steps: [10, 100]}\n"))
	d := mustOpen(f, "s1")
	h := d.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, req := range []struct{ method, path string }{
			{"POST", "/api/rollouts/step"}, {"POST", "/api/rollouts/rollback"}, {"POST", "/api/rollouts/finish"},
			{"POST", "/api/rollouts/progress"}, {"PUT", "/api/policies/m"}, {"POST", "/api/workloads/pairings"},
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, bytes.NewReader(body)))
			if c := rec.Code; c >= 500 {
				t.Fatalf("%s %s: status %d: %s", req.method, req.path, c, rec.Body)
			}
		}
	})
}
