package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

// A URL serving far more than the signed size, or never ending, is cut off
// at the size (or, announced, refused before its body is read), and a host
// outside the allow-list is not contacted at all.
func TestDownloadSizedIsBounded(t *testing.T) {
	art := []byte("the real artifact")
	sum := sha256.Sum256(art)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/huge": // announces 10 GiB
			w.Header().Set("Content-Length", "10737418240")
			_, _ = w.Write(art)
		case "/endless": // chunked, never ends
			chunk := bytes.Repeat([]byte("x"), 32<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		default:
			_, _ = w.Write(art)
		}
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var buf bytes.Buffer
	if _, err := c.DownloadSized(ctx, "/ok", digest, int64(len(art)), &buf); err != nil || buf.String() != string(art) {
		t.Fatalf("download of the right size: %v", err)
	}
	for _, path := range []string{"/huge", "/endless"} {
		buf.Reset()
		n, err := c.DownloadSized(ctx, path, digest, int64(len(art)), &buf)
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("%s: %v, want a size mismatch", path, err)
		}
		if n > int64(len(art))+1 || buf.Len() > len(art)+1 {
			t.Fatalf("%s: %d bytes read, the signed size is %d", path, buf.Len(), len(art))
		}
	}
	u, _ := url.Parse(srv.URL)
	c.AllowedHosts = []string{"registry.example"}
	if _, err := c.DownloadSized(ctx, srv.URL+"/ok?sig=secret", digest, int64(len(art)), &buf); !errors.Is(err, ErrHostNotAllowed) && modelfleet.ErrorCode(err) != modelfleet.EFORBIDDEN {
		t.Fatalf("a host outside the allow-list: %v", err)
	} else if strings.Contains(err.Error(), "secret") {
		t.Fatalf("the error shows the URL's query: %v", err)
	}
	c.AllowedHosts = []string{u.Hostname()}
	if _, err := c.DownloadSized(ctx, "/ok", digest, int64(len(art)), &buf); err != nil {
		t.Fatalf("an allowed host: %v", err)
	}
}
