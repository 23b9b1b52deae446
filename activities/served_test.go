package activities

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// TestValidateAndSignServedVersion: a version served by an external model
// server passes validation on its server reference (the worker cannot run
// the server), and its signed statement names that server, which the
// site's verification then requires.
func TestValidateAndSignServedVersion(t *testing.T) {
	reg := &blobRegistry{blobs: map[string][]byte{}}
	archive := []byte("a packed model directory")
	srv := `{"name":"triton","model":"bearing","task":"binary","args":["--model-repository={model_dir}"]}`
	reg.m = modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "m", Version: "5"}, Format: modelfleet.FormatOIP,
		Digest: reg.add(archive), ArtifactURL: "http://registry.invalid/a", Features: []string{"x", "y"},
		Properties: map[string]string{modelfleet.PropServer: srv}}
	if err := reg.m.Validate(); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &Cloud{Registry: reg, Signer: keySigner{key}}
	rep, err := a.ValidateModel(context.Background(), reg.m.ModelRef)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Result.Passed || !strings.Contains(rep.Result.Note, `model server "triton"`) || rep.Model.Size != int64(len(archive)) {
		t.Fatalf("validation %+v", rep)
	}
	env, err := a.SignRelease(context.Background(), SignRequest{Release: "release/m/5", Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	trust := &modelfleet.Trust{Keys: []modelfleet.TrustedKey{{ID: modelfleet.KeyID(pub), PublicKey: pub}}}
	server, _ := modelfleet.ServerOf(&rep.Model)
	v := modelfleet.DesiredVersion{Version: "5", Digest: reg.m.Digest, Size: int64(len(archive)), Format: modelfleet.FormatOIP, Features: []string{"x", "y"}, Server: server}
	if _, err := trust.VerifyRelease(env, "m", v); err != nil {
		t.Fatalf("the signed statement does not verify: %v", err)
	}
	v.Server = &modelfleet.ModelServer{Name: "mlserver", Model: "bearing", Task: modelfleet.TaskBinary}
	if _, err := trust.VerifyRelease(env, "m", v); err == nil {
		t.Error("the statement verified for another server")
	}

	// A server block that does not validate fails validation with why.
	reg.m.Properties[modelfleet.PropServer] = `{"name":"triton","model":"bearing","task":"ranking"}`
	rep, err = a.ValidateModel(context.Background(), reg.m.ModelRef)
	if err != nil || rep.Result.Passed || !strings.Contains(rep.Result.Note, "task") {
		t.Errorf("a bad server block: %+v %v", rep.Result, err)
	}
}
