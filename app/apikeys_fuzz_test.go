package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
)

// FuzzAPIKeysRequest sends PUT /api/apikeys any body: the answer is a
// success or a client error, never a 5xx, and whatever was stored is a
// valid set of hashes.
func FuzzAPIKeysRequest(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add(`{"sites":["s1"],"model":"m","sha256":["` + h + `"]}`)
	f.Add(`{"selector":{"plant":"a"},"sha256":["` + h + `","` + strings.Repeat("cd", 32) + `"]}`)
	f.Add(`{"all":true,"sha256":[]}`)
	f.Add(`{"sites":["s1"],"sha256":["secret"],"extra":1}`)
	f.Add(`{"sites":["s1","s1"]} {}`)
	dir, err := fleet.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { dir.Close() })
	for _, id := range []string{"s1", "s2"} {
		if _, err := dir.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id), Labels: map[string]string{"plant": "a"}}); err != nil {
			f.Fatal(err)
		}
	}
	handler := apiKeysHandler(dir)
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		handler(rec, httptest.NewRequest(http.MethodPut, "/api/apikeys", strings.NewReader(body)))
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("PUT /api/apikeys %q: %d %s", body, rec.Code, rec.Body)
		}
		for _, id := range []string{"s1", "s2"} {
			ds, err := dir.Desired(context.Background(), id, -1)
			if err != nil {
				t.Fatal(err)
			}
			if err := ds.APIKeys.Validate(); err != nil {
				t.Fatalf("after %q, site %s holds invalid keys: %v", body, id, err)
			}
		}
	})
}
