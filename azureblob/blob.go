// Package azureblob reads and writes Azure Blob Storage with the worker's
// Entra ID credential, and resolves Azure ML datastore URIs (azureml://) to
// the blobs they name. It holds what the Azure ML model registry
// (registry/azureml) and the Azure ML training runner (training) share:
// the Get Blob and Put Blob requests, their error mapping, and the rule
// that the storage token goes to Azure Storage blob endpoints only.
package azureblob

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"

	"github.com/modelfleet/modelfleet"
)

// The Blob service's REST protocol, the two operations used: Get Blob and
// Put Blob (a block blob in one request).
const (
	// StorageScope is the token scope of Azure Storage's data plane.
	StorageScope = "https://storage.azure.com/.default"
	// APIVersion is the x-ms-version sent; bearer tokens need 2017-11-09
	// or later, Put Blob up to 5000 MiB needs 2019-12-12.
	APIVersion = "2023-11-03"
	// MaxPutBlob is Put Blob's limit for one request (5000 MiB).
	MaxPutBlob = 5000 << 20
)

// DefaultSuffixes are the storage DNS suffixes of Azure's public, China
// and US Government clouds.
var DefaultSuffixes = []string{"core.windows.net", "core.chinacloudapi.cn", "core.usgovcloudapi.net"}

// Client talks to Azure Blob Storage with one credential. It sends its
// token wherever it is asked to: callers resolve URLs with Datastores,
// which refuses hosts that are not blob endpoints.
type Client struct {
	pl runtime.Pipeline
}

// New returns a client whose requests carry a bearer token for
// StorageScope. opts sets the transport and retries (nil: azcore's
// defaults).
func New(module string, cred azcore.TokenCredential, opts *policy.ClientOptions) *Client {
	pl := runtime.NewPipeline(module, "v1",
		runtime.PipelineOptions{PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{StorageScope}, nil)}}, opts)
	return &Client{pl: pl}
}

// Get streams the blob at u to w. A blob larger than max bytes (max > 0)
// is an ETOOLARGE error; w may then have received its first max bytes.
func (c *Client) Get(ctx context.Context, u string, max int64, w io.Writer) (int64, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, u)
	if err != nil {
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "blob url %q: %v", Redact(u), err)
	}
	req.Raw().Header.Set("x-ms-version", APIVersion)
	runtime.SkipBodyDownload(req) // stream it: artifacts can be large
	resp, err := c.pl.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get blob %s: %w", Redact(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, Error("get blob", u, resp)
	}
	tooLarge := func() error {
		return modelfleet.Errorf(modelfleet.ETOOLARGE, "get blob %s: larger than %d bytes", Redact(u), max)
	}
	if max > 0 && resp.ContentLength > max {
		return 0, tooLarge()
	}
	var body io.Reader = resp.Body
	if max > 0 {
		body = io.LimitReader(resp.Body, max+1)
	}
	n, err := io.Copy(w, body)
	if err != nil {
		return n, fmt.Errorf("get blob %s: %w", Redact(u), err)
	}
	if max > 0 && n > max {
		return n, tooLarge()
	}
	return n, nil
}

// Put uploads the file at path as the block blob u (Put Blob, one
// request), with the given metadata headers (x-ms-meta-*). The body is
// re-read from the file when the pipeline retries.
func (c *Client) Put(ctx context.Context, u, path, contentType string, meta map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > MaxPutBlob {
		return modelfleet.Errorf(modelfleet.ETOOLARGE, "%s is %d bytes, more than one Put Blob takes (%d)", path, st.Size(), int64(MaxPutBlob))
	}
	req, err := runtime.NewRequest(ctx, http.MethodPut, u)
	if err != nil {
		return modelfleet.Errorf(modelfleet.EINVALID, "blob url %q: %v", Redact(u), err)
	}
	h := req.Raw().Header
	h.Set("x-ms-version", APIVersion)
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-blob-content-type", contentType)
	for k, v := range meta {
		h.Set(k, v)
	}
	if err := req.SetBody(streaming.NopCloser(f), contentType); err != nil {
		return fmt.Errorf("put blob %s: %w", Redact(u), err)
	}
	resp, err := c.pl.Do(req)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", Redact(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return Error("put blob", u, resp)
	}
	return nil
}

// Error maps a Blob service error (its code in x-ms-error-code) to the
// domain's codes, saying what to check.
func Error(op, u string, resp *http.Response) error {
	code := resp.Header.Get("x-ms-error-code")
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	what := fmt.Sprintf("%s %s: %d %s", op, Redact(u), resp.StatusCode, code)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return modelfleet.Errorf(modelfleet.ENOTFOUND, "%s", what)
	case http.StatusUnauthorized, http.StatusForbidden:
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "%s: the worker's identity needs Storage Blob Data Reader (to download) or Storage Blob Data Contributor (to upload) on the storage account", what)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return modelfleet.Errorf(modelfleet.EINVALID, "%s", what)
	}
	return fmt.Errorf("%s: %w", what, runtime.NewResponseError(resp))
}

// Redact drops a URL's query (a SAS token, if anyone put one there), so
// errors and logs never carry secrets.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid url>"
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}

// IsBlobHost reports whether host is an Azure Storage blob endpoint of one
// of the given DNS suffixes ("<account>.blob.<suffix>"). The storage token
// is sent only to such hosts: a URI from a model version or a policy must
// not be able to carry the worker's token elsewhere.
func IsBlobHost(host string, suffixes []string) bool {
	host = strings.ToLower(host)
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	for _, s := range suffixes {
		if account, ok := strings.CutSuffix(host, ".blob."+strings.ToLower(s)); ok && account != "" && !strings.Contains(account, ".") {
			return true
		}
	}
	return false
}
