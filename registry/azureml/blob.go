package azureml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	// blobAPIVersion is the x-ms-version sent; bearer tokens need
	// 2017-11-09 or later, Put Blob up to 5000 MiB needs 2019-12-12.
	blobAPIVersion = "2023-11-03"
	// maxPutBlob is Put Blob's limit for one request (5000 MiB).
	maxPutBlob = 5000 << 20
	// metaDigest is the blob metadata key holding the sha256 of the
	// content (x-ms-meta-modelfleet_sha256), for people reading the
	// container; digests the registry trusts are on the model version.
	metaDigest = "x-ms-meta-modelfleet_sha256"
)

// blobs talks to Azure Blob Storage with the worker's credential.
type blobs struct {
	pl runtime.Pipeline
}

func newBlobs(cred azcore.TokenCredential, opts *policy.ClientOptions) blobs {
	pl := runtime.NewPipeline("modelfleet/registry/azureml", "v1",
		runtime.PipelineOptions{PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{StorageScope}, nil)}}, opts)
	return blobs{pl: pl}
}

// get streams the blob at u to w while hashing it, and fails unless it
// hashes to digest. w has then received bad bytes.
func (b blobs) get(ctx context.Context, u, digest string, w io.Writer) (int64, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, u)
	if err != nil {
		return 0, modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: blob url %q: %v", u, err)
	}
	req.Raw().Header.Set("x-ms-version", blobAPIVersion)
	runtime.SkipBodyDownload(req) // stream it: artifacts can be large
	resp, err := b.pl.Do(req)
	if err != nil {
		return 0, fmt.Errorf("azure ml registry: get blob %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, blobError("get blob", u, resp)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return n, fmt.Errorf("azure ml registry: get blob %s: %w", redact(u), err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("azure ml registry: get blob %s: %w: got %s, want %s", redact(u), ErrDigestMismatch, got, digest)
	}
	return n, nil
}

// put uploads the file at path as the block blob u (Put Blob, one
// request). The body is re-read from the file when the pipeline retries.
// Overwriting is harmless: callers name blobs by their digest.
func (b blobs) put(ctx context.Context, u, path, digest, contentType string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("azure ml registry: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("azure ml registry: %w", err)
	}
	if st.Size() > maxPutBlob {
		return modelfleet.Errorf(modelfleet.ETOOLARGE, "azure ml registry: %s is %d bytes, more than one Put Blob takes (%d)", path, st.Size(), int64(maxPutBlob))
	}
	req, err := runtime.NewRequest(ctx, http.MethodPut, u)
	if err != nil {
		return modelfleet.Errorf(modelfleet.EINVALID, "azure ml registry: blob url %q: %v", u, err)
	}
	h := req.Raw().Header
	h.Set("x-ms-version", blobAPIVersion)
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-blob-content-type", contentType)
	h.Set(metaDigest, digest)
	if err := req.SetBody(streaming.NopCloser(f), contentType); err != nil {
		return fmt.Errorf("azure ml registry: put blob %s: %w", redact(u), err)
	}
	resp, err := b.pl.Do(req)
	if err != nil {
		return fmt.Errorf("azure ml registry: put blob %s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return blobError("put blob", u, resp)
	}
	return nil
}

// ErrDigestMismatch is wrapped by Download when the bytes received do not
// hash to the expected digest.
var ErrDigestMismatch = errors.New("digest mismatch")

// blobError maps a Blob service error (code in x-ms-error-code) to the
// domain's codes, saying what to check.
func blobError(op, u string, resp *http.Response) error {
	code := resp.Header.Get("x-ms-error-code")
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	what := fmt.Sprintf("azure ml registry: %s %s: %d %s", op, redact(u), resp.StatusCode, code)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return modelfleet.Errorf(modelfleet.ENOTFOUND, "%s", what)
	case http.StatusUnauthorized, http.StatusForbidden:
		return modelfleet.Errorf(modelfleet.EUNAUTHORIZED, "%s: the worker's identity needs Storage Blob Data Reader (download) or Contributor (register) on the storage account", what)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return modelfleet.Errorf(modelfleet.EINVALID, "%s", what)
	}
	return fmt.Errorf("%s: %w", what, runtime.NewResponseError(resp))
}

// redact drops a URL's query (a SAS token, if anyone put one there), so
// errors and logs never carry secrets.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid url>"
	}
	p.RawQuery, p.Fragment, p.User = "", "", nil
	return p.String()
}

// blobHost reports whether host is an Azure Storage blob endpoint of one of
// the given DNS suffixes ("<account>.blob.<suffix>"). The storage token is
// sent only to such hosts: a model version's URI must not be able to carry
// the worker's token elsewhere.
func blobHost(host string, suffixes []string) bool {
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
