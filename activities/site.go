package activities

import (
	"context"
	"fmt"
	"io"

	"go.temporal.io/sdk/activity"

	"github.com/modelfleet/modelfleet/edge"
)

// Downloader streams an artifact from the registry, verifying its digest.
type Downloader interface {
	Download(ctx context.Context, url, digest string, w io.Writer) (int64, error)
}

// Site holds what a site's edge worker needs: its agent (store + router) and
// a way to fetch artifacts. Each edge worker registers one instance on its
// own task queue, so the workflow reaches a specific site by task queue.
type Site struct {
	Agent      *edge.Agent
	Downloader Downloader
	// AfterDeploy, if set, is called after a deploy changed what the site
	// serves (the edge process uses it to report to the directory at once).
	AfterDeploy func(edge.DeployResult)
}

// DeployModel downloads the artifact over HTTP, verifies its digest, stores
// it on the site's disk and swaps it into the router. Idempotent: a retry, or
// a second release of the same digest, changes nothing.
func (a *Site) DeployModel(ctx context.Context, req edge.DeployRequest) (edge.DeployResult, error) {
	fetch := func(ctx context.Context, w io.Writer) error {
		activity.RecordHeartbeat(ctx, "downloading")
		_, err := a.Downloader.Download(ctx, req.ArtifactURL, req.Digest, w)
		return err
	}
	res, err := a.Agent.Deploy(ctx, req, fetch)
	if err != nil {
		return edge.DeployResult{}, fmt.Errorf("deploy %s: %w", req.Model, err)
	}
	if a.AfterDeploy != nil {
		a.AfterDeploy(res)
	}
	return res, nil
}
