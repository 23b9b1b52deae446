package edge

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/modelfleet/modelfleet"
)

// artifactMeta is written beside every installed artifact. state.json only
// lists the loaded versions; the metadata is what lets SetTraffic load a
// version that is merely kept on disk (a rollback) without its deploy
// request, and without a download.
type artifactMeta struct {
	Digest   string   `json:"digest"`
	Format   string   `json:"format"`
	Features []string `json:"features"`
	// Server is the external model server of a FormatOIP artifact.
	Server *modelfleet.ModelServer `json:"server,omitempty"`
	// Statement is the release statement the artifact was installed
	// with, verified before its download and again when the agent starts
	// (verify.go); nil for an unsigned install. Sites before statements
	// went into the metadata kept it in a file of its own
	// (statementPath), which is still read.
	Statement *modelfleet.Envelope `json:"statement,omitempty"`
}

// maxMetaFile bounds a metadata file read back from disk.
const maxMetaFile = 1 << 20

// readMeta reads the metadata kept beside the artifact at path.
func readMeta(path string) (artifactMeta, error) {
	var m artifactMeta
	b, err := readBounded(metaPath(path), maxMetaFile)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func metaPath(artifact string) string { return strings.TrimSuffix(artifact, ".model") + ".json" }

// writeMeta records the metadata of the artifact at path, its release
// statement among it, unless the file already says exactly that (a
// retried deploy does not fsync again).
func writeMeta(path string, req *DeployRequest) error {
	b, err := metaJSON(req)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(metaPath(path)); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return WriteFileAtomic(metaPath(path), b)
}

func metaJSON(req *DeployRequest) ([]byte, error) {
	return json.Marshal(artifactMeta{Digest: req.Digest, Format: req.Format, Features: req.Features, Server: req.Server, Statement: req.Statement})
}

// installed returns the deploy request of the artifact of ref kept on disk.
// Should a version have been installed with more than one digest (the same
// version registered twice), the most recently installed one wins. The
// caller must have validated ref.
func (s *Store) installed(ref modelfleet.ModelRef) (DeployRequest, error) {
	files, _ := filepath.Glob(filepath.Join(s.dir, modelsDir, ref.Name, ref.Version, "*.model"))
	type found struct {
		req DeployRequest
		mod time.Time
	}
	var all []found
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		m, err := readMeta(p)
		if err != nil {
			continue
		}
		req := DeployRequest{Model: ref, Digest: m.Digest, Format: m.Format, Features: m.Features, Server: m.Server}
		// The file name is the digest: metadata that disagrees is not trusted.
		if req.Validate() != nil || s.Path(ref, req.Digest) != p {
			continue
		}
		all = append(all, found{req, fi.ModTime()})
	}
	if len(all) == 0 {
		return DeployRequest{}, modelfleet.Errorf(modelfleet.ENOTFOUND, "model %s is not installed at this site (or was installed before its metadata was kept): deploy it first", ref)
	}
	return slices.MaxFunc(all, func(a, b found) int { return a.mod.Compare(b.mod) }).req, nil
}
