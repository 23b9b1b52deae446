package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// Client talks to a registry's HTTP API. Errors the server reports come back
// as *modelfleet.Error with the server's code and message.
type Client struct {
	BaseURL    string       // e.g. "http://localhost:8081"
	HTTPClient *http.Client // nil means http.DefaultClient
	// AllowedHosts, if set, are the only hosts Download fetches from
	// ("host" matches any port, "host:port" that port only). Nil: any.
	AllowedHosts []string
}

// ErrHostNotAllowed is wrapped by Download when the URL's host is not in
// AllowedHosts.
var ErrHostNotAllowed = errors.New("artifact host not allowed")

// ErrDigestMismatch is wrapped by Download when the bytes received do not
// hash to the expected digest: corrupt or truncated in transit, or the wrong
// blob. Retrying the download is the usual remedy.
var ErrDigestMismatch = errors.New("digest mismatch")

// Register uploads a model version: m's metadata, the artifact file and,
// when validationPath is not empty, the labelled validation data. Files are
// streamed, never read into memory. created is false when the registry
// already had this exact version.
func (c *Client) Register(ctx context.Context, m modelfleet.Model, artifactPath, validationPath string) (modelfleet.Model, bool, error) {
	meta, err := json.Marshal(m)
	if err != nil {
		return modelfleet.Model{}, false, fmt.Errorf("registry: encode metadata: %w", err)
	}
	// Open the files before the request, so a wrong path fails plainly
	// rather than as a broken upload.
	art, err := os.Open(artifactPath)
	if err != nil {
		return modelfleet.Model{}, false, fmt.Errorf("registry: open artifact: %w", err)
	}
	defer art.Close()
	var data *os.File
	if validationPath != "" {
		if data, err = os.Open(validationPath); err != nil {
			return modelfleet.Model{}, false, fmt.Errorf("registry: open validation data: %w", err)
		}
		defer data.Close()
	}

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeUpload(mw, meta, art, data))
	}()
	defer func() {
		pr.Close() // unblocks the writer if the server answered early
		<-done
	}()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/api/models"), pr)
	if err != nil {
		return modelfleet.Model{}, false, fmt.Errorf("registry: register: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var out modelfleet.Model
	status, err := c.do(req, &out)
	if err != nil {
		return modelfleet.Model{}, false, err
	}
	return out, status == http.StatusCreated, nil
}

// writeUpload writes the parts in the order the server needs: metadata
// first, so it can refuse a bad request before the artifact is sent.
func writeUpload(mw *multipart.Writer, meta []byte, art, data *os.File) error {
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="metadata"`)
	h.Set("Content-Type", "application/json")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := pw.Write(meta); err != nil {
		return err
	}
	if err := copyPart(mw, "artifact", art); err != nil {
		return err
	}
	if data != nil {
		if err := copyPart(mw, "validation", data); err != nil {
			return err
		}
	}
	return mw.Close()
}

func copyPart(mw *multipart.Writer, name string, f *os.File) error {
	base := f.Name()
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	pw, err := mw.CreateFormFile(name, base)
	if err != nil {
		return err
	}
	_, err = io.Copy(pw, f)
	return err
}

// Get returns one model version.
func (c *Client) Get(ctx context.Context, name, version string) (modelfleet.Model, error) {
	var m modelfleet.Model
	path := "/api/models/" + url.PathEscape(name) + "/versions/" + url.PathEscape(version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path), nil)
	if err != nil {
		return m, fmt.Errorf("registry: get model: %w", err)
	}
	_, err = c.do(req, &m)
	return m, err
}

// List returns every model version, sorted by name and version.
func (c *Client) List(ctx context.Context) ([]modelfleet.Model, error) {
	var ms []modelfleet.Model
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/api/models"), nil)
	if err != nil {
		return nil, fmt.Errorf("registry: list models: %w", err)
	}
	_, err = c.do(req, &ms)
	return ms, err
}

// Download streams the blob at rawURL (absolute, or relative to BaseURL) to
// w while hashing it, and fails with ErrDigestMismatch unless it hashes to
// digest. w has then received bad bytes: write to a temp file and rename it
// into place only when Download succeeds.
func (c *Client) Download(ctx context.Context, rawURL, digest string, w io.Writer) (int64, error) {
	return c.DownloadSized(ctx, rawURL, digest, 0, w)
}

// DownloadSized is Download of an artifact of known size (0: unknown): a
// response announcing another length fails before its body is read, and
// one running longer is cut off at size.
func (c *Client) DownloadSized(ctx context.Context, rawURL, digest string, size int64, w io.Writer) (int64, error) {
	if !modelfleet.ValidDigest(digest) {
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "digest %q is invalid: want sha256:<64 hex digits>", digest)
	}
	u, err := c.resolve(rawURL)
	if err != nil {
		return 0, err
	}
	if err := c.allowed(u); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("registry: download %q: %w", u, err)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("registry: download %q: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, responseError(req, resp)
	}
	var body io.Reader = resp.Body
	if size > 0 {
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return 0, fmt.Errorf("registry: download %q: %w: the server announces %d bytes, want %d", u, ErrDigestMismatch, resp.ContentLength, size)
		}
		body = io.LimitReader(resp.Body, size+1)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), body)
	if err != nil {
		return n, fmt.Errorf("registry: download %q: %w", u, err)
	}
	if size > 0 && n != size {
		return n, fmt.Errorf("registry: download %q: %w: got %d bytes or more, want %d", u, ErrDigestMismatch, n, size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("registry: download %q: %w: got %s, want %s", u, ErrDigestMismatch, got, digest)
	}
	return n, nil
}

// allowed checks u's host against AllowedHosts.
func (c *Client) allowed(u string) error {
	if len(c.AllowedHosts) == 0 {
		return nil
	}
	pu, err := url.Parse(u)
	if err != nil {
		return modelfleet.Errorf(modelfleet.EINVALID, "download url %q is invalid: %v", u, err)
	}
	for _, h := range c.AllowedHosts {
		if strings.EqualFold(h, pu.Host) || strings.EqualFold(h, pu.Hostname()) {
			return nil
		}
	}
	return modelfleet.Errorf(modelfleet.EFORBIDDEN, "download %q: %v: %q is not one of %v", redactURL(pu), ErrHostNotAllowed, pu.Host, c.AllowedHosts)
}

// redactURL drops a URL's credentials and query (a SAS token, say) for an
// error message.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment = nil, "", ""
	return c.String()
}

func (c *Client) client() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

func (c *Client) url(path string) string { return strings.TrimRight(c.BaseURL, "/") + path }

func (c *Client) resolve(rawURL string) (string, error) {
	ref, err := url.Parse(rawURL)
	if err != nil {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "download url %q is invalid: %v", rawURL, err)
	}
	if ref.IsAbs() {
		return rawURL, nil
	}
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return "", modelfleet.Errorf(modelfleet.EINVALID, "registry base url %q is invalid: %v", c.BaseURL, err)
	}
	return base.ResolveReference(ref).String(), nil
}

// do sends req and decodes a 2xx JSON response into out.
func (c *Client) do(req *http.Request, out any) (int, error) {
	resp, err := c.client().Do(req)
	if err != nil {
		return 0, fmt.Errorf("registry: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, responseError(req, resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("registry: %s %s: decode response: %w", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, nil
}

// responseError rebuilds the server's *modelfleet.Error from its JSON error
// body, or describes a response that has none.
func responseError(req *http.Request, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb httpjson.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		return &modelfleet.Error{Code: eb.Error, Message: eb.Message}
	}
	snippet := strings.TrimSpace(string(body[:min(len(body), 200)]))
	return modelfleet.Errorf(httpjson.Code(resp.StatusCode), "registry: %s %s: %s: %q", req.Method, req.URL.Path, resp.Status, snippet)
}
