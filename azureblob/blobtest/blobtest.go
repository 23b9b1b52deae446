// Package blobtest is Azure Blob Storage for tests: Get Blob, Put Blob and
// List Blobs (flat, two a page)
// over TLS, checking what the service checks (a bearer token,
// x-ms-version, a block blob type), reached under the real
// <account>.blob.core.windows.net host names through Options' transport.
package blobtest

import (
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Storage holds blobs by "/<container>/<path>". Set Blobs and Status
// before requests are made, or under Lock.
type Storage struct {
	sync.Mutex
	Blobs map[string][]byte
	// Status answers every request for that path with an HTTP status and
	// an x-ms-error-code.
	Status map[string]int
	reqs   []Request
	srv    *httptest.Server
}

// Request is what the server saw of one request.
type Request struct {
	Method, Host, Path, Auth, Version, BlobType, Meta string
}

// Start runs a storage server until the test ends.
func Start(tb testing.TB) *Storage {
	tb.Helper()
	s := &Storage{Blobs: map[string][]byte{}, Status: map[string]int{}}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	tb.Cleanup(s.srv.Close)
	return s
}

// Options are blob pipeline options sending every request to the server
// (keeping the Host the client addressed, as a DNS entry pointing there
// would), with fast retries.
func (s *Storage) Options() *policy.ClientOptions {
	return &policy.ClientOptions{Transport: redirect{s.srv}, Retry: policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond}}
}

// Requests returns the requests seen so far.
func (s *Storage) Requests() []Request {
	s.Lock()
	defer s.Unlock()
	return slices.Clone(s.reqs)
}

func (s *Storage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Lock()
	defer s.Unlock()
	s.reqs = append(s.reqs, Request{r.Method, r.Host, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("x-ms-version"), r.Header.Get("x-ms-blob-type"), r.Header.Get("x-ms-meta-modelfleet_sha256")})
	fail := func(status int, code string) {
		w.Header().Set("x-ms-error-code", code)
		w.WriteHeader(status)
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>`+code+`</Code><Message>x</Message></Error>`)
	}
	switch {
	case !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
		fail(http.StatusUnauthorized, "NoAuthenticationInformation")
		return
	case r.Header.Get("x-ms-version") == "":
		fail(http.StatusBadRequest, "MissingRequiredHeader")
		return
	case s.Status[r.URL.Path] != 0:
		fail(s.Status[r.URL.Path], map[int]string{403: "AuthorizationPermissionMismatch", 503: "ServerBusy"}[s.Status[r.URL.Path]])
		return
	}
	switch r.Method {
	case http.MethodGet:
		if q := r.URL.Query(); q.Get("restype") == "container" && q.Get("comp") == "list" {
			s.list(w, r.URL.Path, q.Get("prefix"), q.Get("marker"))
			return
		}
		b, ok := s.Blobs[r.URL.Path]
		if !ok {
			fail(http.StatusNotFound, "BlobNotFound")
			return
		}
		w.Header().Set("x-ms-blob-type", "BlockBlob")
		w.Write(b)
	case http.MethodPut:
		if r.Header.Get("x-ms-blob-type") != "BlockBlob" {
			fail(http.StatusBadRequest, "MissingRequiredHeader")
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil || int64(len(b)) != r.ContentLength {
			fail(http.StatusBadRequest, "InvalidInput")
			return
		}
		s.Blobs[r.URL.Path] = b
		w.WriteHeader(http.StatusCreated)
	default:
		fail(http.StatusMethodNotAllowed, "UnsupportedHttpVerb")
	}
}

// listPage is how many blobs one List Blobs answer holds: few, so that
// clients must follow NextMarker.
const listPage = 2

// list answers List Blobs (flat) for the container at path.
func (s *Storage) list(w http.ResponseWriter, container, prefix, marker string) {
	var names []string
	for k := range s.Blobs {
		if name, ok := strings.CutPrefix(k, container+"/"); ok && strings.HasPrefix(name, prefix) && name > marker {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	next := ""
	if len(names) > listPage {
		names, next = names[:listPage], names[listPage-1]
	}
	w.Header().Set("Content-Type", "application/xml")
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>`)
	for _, n := range names {
		b.WriteString("<Blob><Name>")
		_ = xml.EscapeText(&b, []byte(n))
		fmt.Fprintf(&b, "</Name><Properties><Content-Length>%d</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>", len(s.Blobs[container+"/"+n]))
	}
	b.WriteString("</Blobs><NextMarker>")
	_ = xml.EscapeText(&b, []byte(next))
	b.WriteString("</NextMarker></EnumerationResults>")
	io.WriteString(w, b.String())
}

type redirect struct{ srv *httptest.Server }

func (r redirect) Do(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Host = strings.TrimPrefix(r.srv.URL, "https://")
	out.Host = req.URL.Host
	return r.srv.Client().Transport.(*http.Transport).RoundTrip(out)
}
