package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// artifactRoutes adds
//
//	PUT /api/artifacts/{digest}   store (the body must hash to digest)
//	GET /api/artifacts/{digest}   read
func (d *Directory) artifactRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /api/artifacts/{digest}", func(w http.ResponseWriter, r *http.Request) {
		httpjson.LongRequest(w, httpjson.BulkTransferTimeout)
		body := http.MaxBytesReader(w, r.Body, MaxArtifactBytes+1)
		if err := d.artifacts.Put(r.Context(), "artifact", body, MaxArtifactBytes, r.PathValue("digest")); err != nil {
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
		httpjson.LongRequest(w, httpjson.BulkTransferTimeout)
		f, _, err := d.artifacts.Open(r.PathValue("digest"))
		if err != nil {
			WriteError(w, err)
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
