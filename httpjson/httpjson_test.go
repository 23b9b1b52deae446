package httpjson

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func TestErrorRoundTrip(t *testing.T) {
	for _, code := range []string{modelfleet.EINVALID, modelfleet.ENOTFOUND, modelfleet.ECONFLICT, modelfleet.EUNAUTHORIZED, modelfleet.ETOOLARGE} {
		rec := httptest.NewRecorder()
		WriteError(rec, modelfleet.Errorf(code, "bad %q", "x"))
		if got, want := rec.Code, Status(code); got != want {
			t.Errorf("%s: status %d, want %d", code, got, want)
		}
		err := ResponseError(rec.Code, http.StatusText(rec.Code), rec.Body.Bytes())
		if got := modelfleet.ErrorCode(err); got != code || modelfleet.ErrorMessage(err) != `bad "x"` {
			t.Errorf("%s: round trip = %v (%s)", code, err, got)
		}
		if Code(rec.Code) != code {
			t.Errorf("Code(%d) = %s, want %s", rec.Code, Code(rec.Code), code)
		}
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, errors.New("open /secret/path: permission denied"))
	if rec.Code != 500 || rec.Body.String() != "{\n  \"error\": \"internal\",\n  \"message\": \"internal error\"\n}\n" {
		t.Errorf("got %d %q", rec.Code, rec.Body)
	}
}

func TestResponseErrorWithoutEnvelope(t *testing.T) {
	err := ResponseError(502, "502 Bad Gateway", []byte("<html>"))
	if modelfleet.ErrorCode(err) != modelfleet.EINTERNAL {
		t.Errorf("error = %v", err)
	}
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			WriteError(w, modelfleet.Errorf(modelfleet.ECONFLICT, "taken"))
			return
		}
		Write(w, 200, map[string]string{"got": r.Method})
	}))
	defer srv.Close()
	var out map[string]string
	if err := Do(t.Context(), nil, "test", "PUT", srv.URL+"/ok", []byte(`{}`), &out); err != nil || out["got"] != "PUT" {
		t.Fatalf("Do = %v, %v", out, err)
	}
	err := Do(t.Context(), nil, "test", "GET", srv.URL+"/bad", nil, &out)
	if modelfleet.ErrorCode(err) != modelfleet.ECONFLICT || modelfleet.ErrorMessage(err) != "taken" {
		t.Fatalf("error = %v", err)
	}
}
