package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/registry"
)

// azureRegistry is a registry whose artifacts live where only the worker
// can read them (azureml:// or Azure blob URLs), like Azure ML's.
type azureRegistry struct {
	m    modelfleet.Model
	data []byte
}

func (r *azureRegistry) Get(context.Context, string, string) (modelfleet.Model, error) {
	return r.m, nil
}
func (r *azureRegistry) Download(_ context.Context, _, _ string, w io.Writer) (int64, error) {
	n, err := w.Write(r.data)
	return int64(n), err
}

// A release of an Azure ML model version reaches agent sites through the
// gateway's copy of the artifact.
func TestValidationMirrorsArtifactsSitesCannotReach(t *testing.T) {
	art, err := os.ReadFile(filepath.Join("..", "examples", "bearing-failure", "model.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(art)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	dir, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	gw := httptest.NewServer(dir.Handler())
	defer gw.Close()

	for _, url := range []string{
		"azureml://subscriptions/s/resourcegroups/rg/workspaces/ws/datastores/workspaceblobstore/paths/m/1/model.txt",
		"https://mlwstore.blob.core.windows.net/azureml/m/1/model.txt",
	} {
		reg := &azureRegistry{m: modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: "1"},
			Format: modelfleet.FormatLightGBM, Digest: digest, ArtifactURL: url}, data: art}
		c := &Cloud{Registry: reg, Artifacts: &fleet.Client{BaseURL: gw.URL}}
		rep, err := c.ValidateModel(context.Background(), reg.m.ModelRef)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Result.Passed || !strings.HasPrefix(rep.Model.ArtifactURL, gw.URL+"/api/artifacts/") {
			t.Fatalf("%s: report %+v, want the gateway's URL", url, rep)
		}
		// What a site does: download and check the digest.
		var got bytes.Buffer
		if _, err := (&registry.Client{}).Download(context.Background(), rep.Model.ArtifactURL, digest, &got); err != nil || !bytes.Equal(got.Bytes(), art) {
			t.Fatalf("site download of the mirrored artifact: %v", err)
		}
	}

	// An artifact the sites can fetch is left where it is.
	reg := &azureRegistry{m: modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "bearing-failure", Version: "2"},
		Format: modelfleet.FormatLightGBM, Digest: digest, ArtifactURL: "http://registry:8081/api/blobs/" + digest}, data: art}
	rep, err := (&Cloud{Registry: reg, Artifacts: &fleet.Client{BaseURL: gw.URL}}).ValidateModel(context.Background(), reg.m.ModelRef)
	if err != nil || rep.Model.ArtifactURL != reg.m.ArtifactURL {
		t.Errorf("an http registry URL was rewritten: %q (%v)", rep.Model.ArtifactURL, err)
	}
}

func TestGatewayRefusesAnArtifactThatIsNotItsDigest(t *testing.T) {
	dir, err := fleet.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	gw := httptest.NewServer(dir.Handler())
	defer gw.Close()
	c := &fleet.Client{BaseURL: gw.URL}
	wrong := "sha256:" + strings.Repeat("ab", 32)
	if _, err := c.MirrorArtifact(context.Background(), wrong, []byte("not that")); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Fatalf("mismatched body: err = %v, want EINVALID", err)
	}
	var out bytes.Buffer
	if _, err := (&registry.Client{}).Download(context.Background(), gw.URL+"/api/artifacts/"+wrong, wrong, &out); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("a refused artifact can be downloaded: err = %v", err)
	}
}
