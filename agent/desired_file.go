package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/registry"
)

// maxDesiredFile bounds the desired-state file: a ConfigMap holds 1 MiB.
const maxDesiredFile = 1 << 20

// convergeFromFile is the pull loop of a site whose desired state arrives
// as a file — the ConfigMap the gitops driver commits and Flux applies,
// mounted into the agent's pod — instead of from the gateway. It re-reads
// the file every interval (a mounted ConfigMap changes in place) and
// applies a higher revision. A file that is missing, unreadable or for
// another site is logged and skipped: the site keeps serving what it has.
// The directory hears about the site from the gitops reconciler, so the
// agent reports nothing there.
func (e *Edge) convergeFromFile(ctx context.Context) {
	dl := &registry.Client{}
	applied := int64(-1)
	lastErr := ""
	for ctx.Err() == nil {
		ds, err := readDesiredFile(e.cfg.DesiredFile, e.cfg.SiteID)
		switch {
		case err != nil:
			if msg := err.Error(); msg != lastErr {
				e.log.Warn("desired-state file unusable; serving what we have", "file", e.cfg.DesiredFile, "error", err)
				lastErr = msg
			}
		case ds.Revision > applied:
			lastErr = ""
			actual := e.apply(ctx, ds, dl)
			applied, e.lastApplied = ds.Revision, ds.Revision
			for name, am := range actual.Models {
				if am.Error != "" {
					e.log.Warn("desired-state file applied with errors", "revision", ds.Revision, "model", name, "error", am.Error)
				}
			}
			e.log.Info("desired state applied from file", "revision", ds.Revision, "models", len(ds.Models))
		}
		sleep(ctx, e.cfg.HeartbeatInterval)
	}
}

// readDesiredFile reads and checks a desired-state document for site.
func readDesiredFile(path, site string) (modelfleet.Desired, error) {
	var ds modelfleet.Desired
	f, err := os.Open(path)
	if err != nil {
		return ds, err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxDesiredFile+1))
	if err != nil {
		return ds, err
	}
	if len(buf) > maxDesiredFile {
		return ds, fmt.Errorf("%s is larger than %d bytes", path, maxDesiredFile)
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		return ds, fmt.Errorf("%s is not a desired-state document: %w", path, err)
	}
	if ds.Site != site {
		return ds, fmt.Errorf("%s is the desired state of site %q, not %q", path, ds.Site, site)
	}
	for name, dm := range ds.Models {
		if err := modelfleet.ValidateName("model name", name); err != nil {
			return ds, err
		}
		if err := modelfleet.ValidateSplit(dm.Versions); err != nil {
			return ds, fmt.Errorf("%s: model %q: %w", path, name, err)
		}
	}
	return ds, nil
}
