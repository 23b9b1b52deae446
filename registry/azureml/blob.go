package azureml

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/modelfleet/modelfleet/azureblob"
)

// StorageScope is the token scope of Azure Storage's data plane.
const StorageScope = azureblob.StorageScope

// metaDigest is the blob metadata key holding the sha256 of the content
// (x-ms-meta-modelfleet_sha256), for people reading the container; digests
// the registry trusts are on the model version.
const metaDigest = "x-ms-meta-modelfleet_sha256"

// blobs talks to Azure Blob Storage with the worker's credential.
type blobs struct {
	c *azureblob.Client
}

// get streams the blob at u to w while hashing it, and fails unless it
// hashes to digest. w has then received bad bytes.
func (b blobs) get(ctx context.Context, u, digest string, w io.Writer) (int64, error) {
	h := sha256.New()
	n, err := b.c.Get(ctx, u, 0, io.MultiWriter(w, h))
	if err != nil {
		return n, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return n, fmt.Errorf("get blob %s: %w: got %s, want %s", azureblob.Redact(u), ErrDigestMismatch, got, digest)
	}
	return n, nil
}

// put uploads the file at path as the block blob u. Overwriting is
// harmless: callers name blobs by their digest.
func (b blobs) put(ctx context.Context, u, path, digest, contentType string) error {
	return b.c.Put(ctx, u, path, contentType, map[string]string{metaDigest: digest})
}

// ErrDigestMismatch is wrapped by Download when the bytes received do not
// hash to the expected digest.
var ErrDigestMismatch = errors.New("digest mismatch")

// redact drops a URL's query, so errors and logs never carry secrets.
func redact(u string) string { return azureblob.Redact(u) }
