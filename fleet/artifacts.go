package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// The gateway mirrors model artifacts the sites cannot fetch themselves:
// Azure ML keeps a version's files in the workspace's blob storage
// (azureml://…), which an edge agent — outbound only, with no Azure
// identity — cannot read. The release's validation step, which downloads
// the artifact anyway, puts it here, content-addressed, and the sites
// download it from the gateway they already reach, checking its digest as
// they do any artifact.

// MaxArtifactBytes bounds a mirrored artifact.
const MaxArtifactBytes = 512 << 20

// artifacts is the gateway's artifact store: <dir>/artifacts/sha256/<hex>.
type artifacts struct{ dir string }

func (a artifacts) path(digest string) string {
	return filepath.Join(a.dir, "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// put stores r under digest, verifying it while it streams; a body that
// does not hash to digest, or is too large, stores nothing.
func (a artifacts) put(digest string, r io.Reader) error {
	if !modelfleet.ValidDigest(digest) {
		return modelfleet.Errorf(modelfleet.EINVALID, "artifact digest %q is invalid: want sha256:<64 hex digits>", digest)
	}
	if _, err := os.Stat(a.path(digest)); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r, MaxArtifactBytes))
		return nil // content-addressed: already here
	}
	if err := os.MkdirAll(filepath.Join(a.dir, "sha256"), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(a.dir, "sha256"), ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, MaxArtifactBytes+1))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("fleet: store artifact %s: %w", digest, err)
	case n > MaxArtifactBytes:
		return modelfleet.Errorf(modelfleet.ETOOLARGE, "artifact is larger than %d bytes", MaxArtifactBytes)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return modelfleet.Errorf(modelfleet.EINVALID, "artifact hashes to %s, not %s", got, digest)
	}
	return os.Rename(tmp.Name(), a.path(digest))
}

// artifactRoutes adds
//
//	PUT /api/artifacts/{digest}   store (the body must hash to digest)
//	GET /api/artifacts/{digest}   read
func (d *Directory) artifactRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /api/artifacts/{digest}", func(w http.ResponseWriter, r *http.Request) {
		body := http.MaxBytesReader(w, r.Body, MaxArtifactBytes+1)
		if err := d.artifacts.put(r.PathValue("digest"), body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = modelfleet.Errorf(modelfleet.ETOOLARGE, "artifact is larger than %d bytes", MaxArtifactBytes)
			}
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"digest": r.PathValue("digest")})
	})
	mux.HandleFunc("GET /api/artifacts/{digest}", func(w http.ResponseWriter, r *http.Request) {
		digest := r.PathValue("digest")
		if !modelfleet.ValidDigest(digest) {
			WriteError(w, modelfleet.Errorf(modelfleet.EINVALID, "artifact digest %q is invalid", digest))
			return
		}
		f, err := os.Open(d.artifacts.path(digest))
		if err != nil {
			WriteError(w, modelfleet.Errorf(modelfleet.ENOTFOUND, "no artifact %s at this gateway", digest))
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		_, _ = io.Copy(w, f)
	})
}

// MirrorArtifact stores data at the gateway under its digest and returns
// the URL sites download it from.
func (c *Client) MirrorArtifact(ctx context.Context, digest string, data []byte) (string, error) {
	u := strings.TrimRight(c.BaseURL, "/") + "/api/artifacts/" + digest
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("fleet: mirror artifact: %w", err)
	}
	defer resp.Body.Close()
	buf, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return "", httpjson.ResponseError(resp.StatusCode, "fleet: mirror artifact: "+resp.Status, buf)
	}
	return u, nil
}
