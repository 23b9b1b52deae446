package registry

import (
	"bytes"
	"encoding/json"
	"github.com/modelfleet/modelfleet/httpjson"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// FuzzRegisterMetadata sends arbitrary metadata through the whole upload
// path (multipart, strict JSON decode, prechecks, blob store, commit). It
// must never panic or fail internally: every outcome is a stored model or a
// client error with a JSON body.
func FuzzRegisterMetadata(f *testing.F) {
	for _, seed := range []string{
		`{"name":"m","version":"1","format":"lightgbm","features":["a","b"]}`,
		`{"name":"m","version":"2","format":"lightgbm","validation":{"metric":"auc","threshold":0.7}}`,
		`{"name":"m","version":"3","format":"lightgbm","tags":{"k":"v"},"properties":{"p":"q"},"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}`,
		`{"name":"m","version":"1","format":"lightgbm","features":["a","a"]}`,
		`{"name":"..","version":"1"}`,
		`{"name":"m","version":"1","format":"lightgbm","validation":{"metric":"f1","threshold":1e308}}`,
		`{"validation":null,"size":-1}`,
		`null`, `[]`, `{`, `{"name":"m"} trailing`, "",
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	r, err := Open(f.TempDir(), Options{Logger: slog.New(slog.DiscardHandler), MaxArtifactBytes: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	h := r.Handler()

	f.Fuzz(func(t *testing.T, meta []byte, withData bool) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		w, _ := mw.CreateFormField("metadata")
		w.Write(meta)
		w, _ = mw.CreateFormFile("artifact", "model.txt")
		w.Write([]byte("tree\n"))
		if withData {
			w, _ = mw.CreateFormFile("validation", "v.csv")
			w.Write([]byte(testCSV))
		}
		mw.Close()
		req := httptest.NewRequest(http.MethodPost, "/api/models", &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusOK, http.StatusCreated:
			var m modelfleet.Model
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%d with a body that is not a model: %v", rec.Code, err)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("stored an invalid model %+v: %v", m, err)
			}
			stored, err := r.Get(m.Name, m.Version)
			if err != nil || stored.Digest != m.Digest || stored.CreatedAt != m.CreatedAt {
				t.Fatalf("Get after %d = %+v, %v", rec.Code, stored, err)
			}
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
			var eb httpjson.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" || eb.Message == "" {
				t.Fatalf("%d with body %q", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("metadata %q: status %d: %s", meta, rec.Code, rec.Body)
		}
	})
}
