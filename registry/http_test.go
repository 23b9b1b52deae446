package registry

import (
	"bytes"
	"encoding/json"
	"github.com/modelfleet/modelfleet/httpjson"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

type part struct{ name, body string }

func multipartBody(t *testing.T, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		w, err := mw.CreateFormFile(p.name, p.name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.body)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func metadata(t *testing.T, m modelfleet.Model) part {
	return part{"metadata", mustJSON(t, m)}
}

func post(t *testing.T, srv *httptest.Server, body io.Reader, contentType string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/api/models", contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("status %d: response is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestHTTPRegisterAndRead(t *testing.T) {
	r := openTest(t, "", Options{})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()

	m := withValidation(testModel("churn", "1"))
	m.Tags = map[string]string{"team": "quality"}
	parts := []part{metadata(t, m), {"artifact", "model-bytes"}, {"validation", testCSV}}
	body, ct := multipartBody(t, parts...)
	status, out := post(t, srv, body, ct)
	if status != http.StatusCreated {
		t.Fatalf("first POST = %d %v, want 201", status, out)
	}
	artURL := srv.URL + "/api/blobs/" + sha("model-bytes")
	if out["digest"] != sha("model-bytes") || out["artifactUrl"] != artURL {
		t.Errorf("response = %v", out)
	}
	if v := out["validation"].(map[string]any); v["dataUrl"] != srv.URL+"/api/blobs/"+sha(testCSV) {
		t.Errorf("validation = %v", v)
	}

	body, ct = multipartBody(t, parts...)
	if status, out := post(t, srv, body, ct); status != http.StatusOK {
		t.Errorf("identical POST = %d %v, want 200", status, out)
	}

	resp, raw := get(t, srv.URL+"/api/models/churn/versions/1")
	var got modelfleet.Model
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &got) != nil || got.ArtifactURL != artURL || got.Tags["team"] != "quality" {
		t.Errorf("GET model = %d %s", resp.StatusCode, raw)
	}
	resp, raw = get(t, srv.URL+"/api/models")
	var list []modelfleet.Model
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &list) != nil || len(list) != 1 || list[0].ArtifactURL != artURL {
		t.Errorf("GET list = %d %s", resp.StatusCode, raw)
	}

	resp, raw = get(t, artURL)
	if resp.StatusCode != http.StatusOK || string(raw) != "model-bytes" {
		t.Errorf("GET blob = %d %q", resp.StatusCode, raw)
	}
	etag := resp.Header.Get("ETag")
	if etag != `"`+sha("model-bytes")+`"` {
		t.Errorf("ETag = %q", etag)
	}
	if resp, _ := get(t, artURL, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET blob If-None-Match = %d, want 304", resp.StatusCode)
	}
	if resp, raw := get(t, artURL, "Range", "bytes=6-"); resp.StatusCode != http.StatusPartialContent || string(raw) != "bytes" {
		t.Errorf("GET blob Range = %d %q, want 206 \"bytes\"", resp.StatusCode, raw)
	}
}

func TestHTTPPublicURL(t *testing.T) {
	r := openTest(t, "", Options{PublicURL: "https://registry.example.com/"})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	body, ct := multipartBody(t, metadata(t, testModel("m", "1")), part{"artifact", "x"})
	_, out := post(t, srv, body, ct)
	if want := "https://registry.example.com/api/blobs/" + sha("x"); out["artifactUrl"] != want {
		t.Errorf("artifactUrl = %v, want %s", out["artifactUrl"], want)
	}
}

func TestHTTPRegisterErrors(t *testing.T) {
	r := openTest(t, "", Options{MaxArtifactBytes: 1024})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	body, ct := multipartBody(t, metadata(t, testModel("taken", "1")), part{"artifact", "first"})
	if status, out := post(t, srv, body, ct); status != http.StatusCreated {
		t.Fatalf("setup POST = %d %v", status, out)
	}

	valid := metadata(t, testModel("m", "1"))
	tests := []struct {
		name   string
		body   func() (io.Reader, string)
		status int
		code   string
	}{
		{"not multipart", func() (io.Reader, string) {
			return strings.NewReader(`{"name":"m"}`), "application/json"
		}, 400, modelfleet.EINVALID},
		{"malformed multipart", func() (io.Reader, string) {
			return strings.NewReader("--xyz\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"na"), "multipart/form-data; boundary=xyz"
		}, 400, modelfleet.EINVALID},
		{"garbage body", func() (io.Reader, string) {
			return strings.NewReader("\x00\x01not multipart at all"), "multipart/form-data; boundary=xyz"
		}, 400, modelfleet.EINVALID},
		{"truncated artifact", func() (io.Reader, string) {
			b, ct := multipartBody(t, valid, part{"artifact", "model-bytes"})
			return bytes.NewReader(b.Bytes()[:b.Len()-20]), ct
		}, 400, modelfleet.EINVALID},
		{"metadata not first", func() (io.Reader, string) {
			return multipartBody(t, part{"artifact", "x"}, valid)
		}, 400, modelfleet.EINVALID},
		{"empty body", func() (io.Reader, string) { return multipartBody(t) }, 400, modelfleet.EINVALID},
		{"metadata not JSON", func() (io.Reader, string) {
			return multipartBody(t, part{"metadata", "name: m"}, part{"artifact", "x"})
		}, 400, modelfleet.EINVALID},
		{"metadata unknown field", func() (io.Reader, string) {
			return multipartBody(t, part{"metadata", `{"name":"m","version":"1","format":"lightgbm","validaton":{}}`}, part{"artifact", "x"})
		}, 400, modelfleet.EINVALID},
		{"metadata trailing data", func() (io.Reader, string) {
			return multipartBody(t, part{"metadata", `{"name":"m","version":"1","format":"lightgbm"} {}`}, part{"artifact", "x"})
		}, 400, modelfleet.EINVALID},
		{"invalid model", func() (io.Reader, string) {
			m := testModel("m", "1")
			m.Format = "pmml"
			return multipartBody(t, metadata(t, m), part{"artifact", "x"})
		}, 400, modelfleet.EINVALID},
		{"no artifact", func() (io.Reader, string) { return multipartBody(t, valid) }, 400, modelfleet.EINVALID},
		{"two artifacts", func() (io.Reader, string) {
			return multipartBody(t, valid, part{"artifact", "x"}, part{"artifact", "y"})
		}, 400, modelfleet.EINVALID},
		{"unknown part", func() (io.Reader, string) {
			return multipartBody(t, valid, part{"artifact", "x"}, part{"readme", "y"})
		}, 400, modelfleet.EINVALID},
		{"validation spec without data", func() (io.Reader, string) {
			return multipartBody(t, metadata(t, withValidation(testModel("m", "1"))), part{"artifact", "x"})
		}, 400, modelfleet.EINVALID},
		{"data without validation spec", func() (io.Reader, string) {
			return multipartBody(t, valid, part{"artifact", "x"}, part{"validation", testCSV})
		}, 400, modelfleet.EINVALID},
		{"conflict", func() (io.Reader, string) {
			return multipartBody(t, metadata(t, testModel("taken", "1")), part{"artifact", "second"})
		}, 409, modelfleet.ECONFLICT},
		{"oversized artifact", func() (io.Reader, string) {
			return multipartBody(t, valid, part{"artifact", strings.Repeat("x", 1025)})
		}, 413, modelfleet.ETOOLARGE},
		{"oversized validation data", func() (io.Reader, string) {
			return multipartBody(t, metadata(t, withValidation(testModel("m", "1"))), part{"artifact", "x"}, part{"validation", strings.Repeat("x", 1025)})
		}, 413, modelfleet.ETOOLARGE},
		{"oversized metadata", func() (io.Reader, string) {
			return multipartBody(t, part{"metadata", `{"name":"` + strings.Repeat("m", 1<<20) + `"}`}, part{"artifact", "x"})
		}, 413, modelfleet.ETOOLARGE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := tt.body()
			status, out := post(t, srv, body, ct)
			if status != tt.status || out["error"] != tt.code || out["message"] == "" {
				t.Errorf("POST = %d %v, want %d with code %q", status, out, tt.status, tt.code)
			}
		})
	}
	if ms, _ := r.List(); len(ms) != 1 {
		t.Errorf("registry holds %d models after bad requests, want 1", len(ms))
	}
}

func TestHTTPBodyLimit(t *testing.T) {
	r := openTest(t, "", Options{MaxArtifactBytes: 16})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	// A huge multipart preamble is framing the blob limits never see.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	buf.WriteString(strings.Repeat("preamble line\r\n", 200_000)) // 3 MiB
	w, _ := mw.CreateFormFile("metadata", "m.json")
	io.WriteString(w, mustJSON(t, testModel("m", "1")))
	mw.Close()
	status, out := post(t, srv, &buf, mw.FormDataContentType())
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST = %d %v, want 413", status, out)
	}
}

func TestHTTPReadErrors(t *testing.T) {
	r := openTest(t, "", Options{})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/api/models/nope/versions/1", 404, modelfleet.ENOTFOUND},
		{"/api/models/a..b/versions/1", 400, modelfleet.EINVALID},
		{"/api/blobs/" + sha("missing"), 404, modelfleet.ENOTFOUND},
		{"/api/blobs/sha256:XYZ", 400, modelfleet.EINVALID},
		{"/api/blobs/..%2Fregistry.db", 400, modelfleet.EINVALID},
	} {
		resp, raw := get(t, srv.URL+tt.path)
		var eb httpjson.ErrorBody
		if resp.StatusCode != tt.status || json.Unmarshal(raw, &eb) != nil || eb.Error != tt.code {
			t.Errorf("GET %s = %d %s, want %d %q", tt.path, resp.StatusCode, raw, tt.status, tt.code)
		}
		if tt.status == 404 && !strings.Contains(eb.Message, "not found") {
			t.Errorf("GET %s: message %q does not say what was not found", tt.path, eb.Message)
		}
	}

	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/api/models", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /api/models = %v, %v; want 405", resp, err)
	}
}

func TestHTTPHealthAndMetrics(t *testing.T) {
	r := openTest(t, "", Options{})
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	register(t, r, testModel("m", "1"), "x", nil)

	if resp, raw := get(t, srv.URL+"/healthz"); resp.StatusCode != 200 || !strings.Contains(string(raw), "ok") {
		t.Errorf("healthz = %d %s", resp.StatusCode, raw)
	}
	resp, raw := get(t, srv.URL+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`modelfleet_registry_registrations_total{outcome="created"} 1`,
		`modelfleet_registry_event_deliveries_total{outcome="delivered"} 0`,
		`modelfleet_registry_outbox_pending 1`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
