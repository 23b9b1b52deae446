package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/modelfleet/modelfleet"
)

// maxDesiredFile bounds the desired-state file: a ConfigMap holds 1 MiB.
const maxDesiredFile = 1 << 20

// FileSource is the desired state of a site that receives it as a file —
// the ConfigMap the gitops driver commits and Flux applies, mounted into the
// agent's pod — instead of from the gateway. Next re-reads the file every
// interval (a mounted ConfigMap changes in place) and returns a higher
// revision. A file that is missing, unreadable, too large, malformed or for
// another site is logged (once per distinct reason) and skipped, as is one
// no newer than what the site applied: Next keeps waiting, and the site
// keeps serving what it has. The directory hears about the site from the gitops
// reconciler, so Report sends nothing.
type FileSource struct {
	path, site string
	interval   time.Duration
	log        *slog.Logger

	read    bool   // the file was read once: wait before the next read
	lastErr string // the last reason logged, so a bad file is logged once
}

// NewFileSource returns the desired state of site from the file at path,
// re-read every interval.
func NewFileSource(path, site string, interval time.Duration, log *slog.Logger) *FileSource {
	return &FileSource{path: path, site: site, interval: interval, log: orDefault(log)}
}

// Next waits for the file to hold a revision above after; it returns an
// error only when ctx is done.
func (s *FileSource) Next(ctx context.Context, after int64) (modelfleet.Desired, error) {
	for {
		if s.read {
			if err := modelfleet.Sleep(ctx, s.interval); err != nil {
				return modelfleet.Desired{}, err
			}
		}
		s.read = true
		ds, err := readDesiredFile(s.path, s.site)
		switch {
		case err != nil:
			if msg := err.Error(); msg != s.lastErr {
				s.log.Warn("desired-state file unusable; serving what we have", "file", s.path, "error", err)
				s.lastErr = msg
			}
		case ds.Revision > after:
			s.lastErr = ""
			return ds, nil
		}
	}
}

// Report drops the report: a gitops site's reconciler reports for it.
func (s *FileSource) Report(context.Context, modelfleet.Actual) error { return nil }

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
	return parseDesired(buf, path, site)
}

// parseDesired checks a desired-state document for site; name says where
// it came from in errors.
func parseDesired(buf []byte, name, site string) (modelfleet.Desired, error) {
	var ds modelfleet.Desired
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		return ds, fmt.Errorf("%s is not a desired-state document: %w", name, err)
	}
	if ds.Site != site {
		return ds, fmt.Errorf("%s is the desired state of site %q, not %q", name, ds.Site, site)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ds, fmt.Errorf("%s is not a desired-state document: data after its JSON object", name)
	}
	for model, dm := range ds.Models {
		if err := modelfleet.ValidateName("model name", model); err != nil {
			return ds, err
		}
		if err := modelfleet.ValidateSplit(dm.Versions); err != nil {
			return ds, fmt.Errorf("%s: model %q: %w", name, model, err)
		}
	}
	return ds, nil
}
