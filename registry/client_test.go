package registry

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func testClient(t *testing.T, opts Options) (*Registry, *Client) {
	r := openTest(t, "", opts)
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	return r, &Client{BaseURL: srv.URL + "/"}
}

func TestClientRoundTrip(t *testing.T) {
	_, c := testClient(t, Options{})
	ctx := context.Background()
	art := writeFile(t, "model.txt", "tree\nversion=v3\n")
	data := writeFile(t, "validation.csv", testCSV)

	m, created, err := c.Register(ctx, withValidation(testModel("churn", "2")), art, data)
	if err != nil || !created {
		t.Fatalf("Register = %v, %v", created, err)
	}
	if m.Digest != sha("tree\nversion=v3\n") || m.Validation.DataDigest != sha(testCSV) {
		t.Errorf("Register = %+v", m)
	}
	if _, created, err := c.Register(ctx, withValidation(testModel("churn", "2")), art, data); err != nil || created {
		t.Errorf("second Register = %v, %v; want created=false", created, err)
	}

	got, err := c.Get(ctx, "churn", "2")
	if err != nil || got.Digest != m.Digest {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}

	var buf bytes.Buffer
	n, err := c.Download(ctx, got.ArtifactURL, got.Digest, &buf)
	if err != nil || n != got.Size || buf.String() != "tree\nversion=v3\n" {
		t.Errorf("Download = %d, %q, %v", n, buf.String(), err)
	}
	buf.Reset()
	// A URL relative to BaseURL works as well.
	if _, err := c.Download(ctx, "/api/blobs/"+got.Validation.DataDigest, got.Validation.DataDigest, &buf); err != nil || buf.String() != testCSV {
		t.Errorf("relative Download = %q, %v", buf.String(), err)
	}
}

func TestClientDownloadDigestMismatch(t *testing.T) {
	ctx := context.Background()
	// A server that answers with other bytes than the digest names.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("tampered"))
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	_, err := c.Download(ctx, srv.URL+"/api/blobs/x", sha("original"), &bytes.Buffer{})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Download of tampered bytes: err = %v, want ErrDigestMismatch", err)
	}
	if err != nil && !strings.Contains(err.Error(), sha("tampered")) {
		t.Errorf("error %q does not name the digest received", err)
	}

	_, err = c.Download(ctx, srv.URL+"/api/blobs/x", "sha256:short", &bytes.Buffer{})
	wantCode(t, err, modelfleet.EINVALID)
}

func TestClientErrors(t *testing.T) {
	_, c := testClient(t, Options{MaxArtifactBytes: 64})
	ctx := context.Background()
	art := writeFile(t, "model.txt", "first")
	if _, _, err := c.Register(ctx, testModel("m", "1"), art, ""); err != nil {
		t.Fatal(err)
	}

	_, _, err := c.Register(ctx, testModel("m", "1"), writeFile(t, "other.txt", "second"), "")
	wantCode(t, err, modelfleet.ECONFLICT)
	if want := `model "m" version "1" already exists with digest ` + sha("first"); err.Error() != want {
		t.Errorf("conflict message = %q, want %q", err, want)
	}

	// Refused mid-upload: the client must report the server's answer, not a
	// broken pipe.
	_, _, err = c.Register(ctx, testModel("big", "1"), writeFile(t, "big.txt", strings.Repeat("x", 4<<20)), "")
	wantCode(t, err, modelfleet.ETOOLARGE)

	// Refused before the artifact is read at all.
	bad := testModel("bad", "1")
	bad.Format = "pmml"
	_, _, err = c.Register(ctx, bad, writeFile(t, "big.txt", strings.Repeat("x", 4<<20)), "")
	wantCode(t, err, modelfleet.EINVALID)

	_, _, err = c.Register(ctx, testModel("m", "2"), filepath.Join(t.TempDir(), "missing"), "")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Register of a missing file: %v", err)
	}

	_, err = c.Get(ctx, "m", "9")
	wantCode(t, err, modelfleet.ENOTFOUND)
	_, err = c.Download(ctx, "/api/blobs/"+sha("none"), sha("none"), &bytes.Buffer{})
	wantCode(t, err, modelfleet.ENOTFOUND)
}

func TestClientNonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := (&Client{BaseURL: srv.URL}).List(context.Background())
	wantCode(t, err, modelfleet.EINTERNAL)
	var me *modelfleet.Error
	if !errors.As(err, &me) || !strings.Contains(me.Message, "502") {
		t.Errorf("err = %v, want the status in the message", err)
	}
}
