package gitops_test

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers/gitops"
)

// A remote URL with a credential written into it never shows in an error
// (errors reach the site's reported state, and from there workflow
// histories): the clone fails against a closed port, and its error names
// the repository redacted.
func TestErrorsRedactTheRepositoryURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	url := "https://deploy-bot:ghp_s3cretT0ken@" + addr + "/fleet.git"
	d := newDriver(t, url, nil)
	site := modelfleet.Site{ID: "line-1", TaskQueue: modelfleet.SiteTaskQueue("line-1")}
	_, err = d.Apply(context.Background(), site, desired("line-1", 1, modelfleet.DesiredVersion{Version: "2", Digest: digest('a'), Format: "lightgbm", Features: []string{"a"}, Weight: 100, ArtifactURL: "http://r/a"}))
	if err == nil {
		t.Fatal("apply to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error shows the credential: %v", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("the error does not name the repository: %v", err)
	}
}

// A signed version's release statement is committed beside the site's
// manifests, outside what kustomize builds.
func TestRenderCommitsStatementsBesideTheManifests(t *testing.T) {
	env := &modelfleet.Envelope{PayloadType: modelfleet.InTotoPayloadType, Payload: []byte(`{"_type":"x"}`), Signatures: []modelfleet.Signature{{KeyID: "ed25519:00", Sig: []byte{1}}}}
	v := modelfleet.DesiredVersion{Version: "2", Digest: digest('a'), Format: "lightgbm", Features: []string{"a"}, Weight: 100, ArtifactURL: "http://r/a", Statement: env}
	site := modelfleet.Site{ID: "line-1", TaskQueue: modelfleet.SiteTaskQueue("line-1")}
	files, err := gitops.Render(gitops.Config{URL: "x", Image: "modelfleet:test", GatewayURL: "http://gw:8080"}, site, desired("line-1", 1, v))
	if err != nil {
		t.Fatal(err)
	}
	dir := gitops.ClusterDir("line-1") + "/"
	got := files[dir+gitops.StatementFile("bearing-failure", "2")]
	var back modelfleet.Envelope
	if err := json.Unmarshal(got, &back); err != nil || string(back.Payload) != string(env.Payload) {
		t.Fatalf("statement file %q: %v", got, err)
	}
	if strings.Contains(string(files[dir+"kustomization.yaml"]), "statement-") {
		t.Fatal("kustomize would apply the statement")
	}
}
