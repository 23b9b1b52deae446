package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

func sampleManifest(t *testing.T, version string) []byte {
	t.Helper()
	doc, err := os.ReadFile("../examples/bearing-failure/workload/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(string(doc), `version: "1"`, `version: "`+version+`"`, 1))
}

func TestRegisterWorkloadIsContentAddressedAndImmutable(t *testing.T) {
	d := mustOpen(t)
	rec, created, err := d.RegisterWorkload(sampleManifest(t, "1"))
	if err != nil || !created {
		t.Fatalf("register = %v, %v", created, err)
	}
	if rec.Name != "bearing-failure-line" || rec.Model != "bearing-failure" || len(rec.Features) != 6 || !modelfleet.ValidDigest(rec.Digest) {
		t.Errorf("record = %+v", rec)
	}
	if _, created, err := d.RegisterWorkload(sampleManifest(t, "1")); err != nil || created {
		t.Errorf("same bytes again = %v, %v; want a no-op", created, err)
	}
	changed := append(sampleManifest(t, "1"), []byte("# retuned\n")...)
	if _, _, err := d.RegisterWorkload(changed); modelfleet.ErrorCode(err) != modelfleet.ECONFLICT {
		t.Errorf("other bytes, same version: %v, want conflict", err)
	}
	if _, _, err := d.RegisterWorkload([]byte("kind: Workload\nname: x\n")); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("bad manifest: %v, want invalid", err)
	}
	list, err := d.Workloads()
	if err != nil || len(list) != 1 || list[0].Manifest != "" {
		t.Errorf("list = %+v, %v; want the one version, without its manifest", list, err)
	}
	if _, err := d.Workload("bearing-failure-line", "9"); modelfleet.ErrorCode(err) != modelfleet.ENOTFOUND {
		t.Errorf("unknown version: %v", err)
	}
}

func TestStepCarriesWorkloadAndRollbackRestoresIt(t *testing.T) {
	d := mustOpen(t, "s1")
	w1, _, err := d.RegisterWorkload(sampleManifest(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	w2, _, err := d.RegisterWorkload(sampleManifest(t, "2"))
	if err != nil {
		t.Fatal(err)
	}
	sites := []string{"s1"}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "bearing-failure", New: version("1", 100), Sites: sites, Workload: &w1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("r1", "bearing-failure", sites); err != nil {
		t.Fatal(err)
	}
	ds := desired(t, d, "s1")
	if got := ds.Workloads["bearing-failure-line"]; got.Version != "1" || got.Release != "" || got.Previous != nil || got.Manifest != w1.Manifest {
		t.Fatalf("after r1 = %+v", got)
	}

	res, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "bearing-failure", New: version("2", 10), Sites: sites, Workload: &w2})
	if err != nil || res.Changed != 1 {
		t.Fatalf("step = %+v, %v", res, err)
	}
	rev := desired(t, d, "s1").Revision
	// A later step of the same release leaves the workload as it is.
	if _, err := d.Step(modelfleet.StepRequest{Release: "r2", Model: "bearing-failure", New: version("2", 100), Sites: sites, Workload: &w2}); err != nil {
		t.Fatal(err)
	}
	ds = desired(t, d, "s1")
	got := ds.Workloads["bearing-failure-line"]
	if got.Version != "2" || got.Release != "r2" || got.Previous == nil || got.Previous.Version != "1" || ds.Revision != rev+1 {
		t.Fatalf("during r2 = %+v (revision %d, was %d)", got, ds.Revision, rev)
	}
	if _, err := d.Rollback("r2", "bearing-failure", sites, ""); err != nil {
		t.Fatal(err)
	}
	ds = desired(t, d, "s1")
	if got := ds.Workloads["bearing-failure-line"]; got.Version != "1" || got.Release != "" || got.Previous != nil {
		t.Errorf("after rollback = %+v, want version 1 unleased", got)
	}
	if got := modelfleet.SplitString(ds.Models["bearing-failure"].Versions); got != "1:100" {
		t.Errorf("model after rollback = %s", got)
	}

	// A release that brought the site's first workload removes it on rollback.
	d2 := mustOpen(t, "s1")
	if _, _, err := d2.RegisterWorkload(sampleManifest(t, "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Step(modelfleet.StepRequest{Release: "r1", Model: "bearing-failure", New: version("1", 100), Sites: sites, Workload: &w1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Rollback("r1", "bearing-failure", sites, ""); err != nil {
		t.Fatal(err)
	}
	if ds := desired(t, d2, "s1"); len(ds.Workloads) != 0 {
		t.Errorf("after rolling back the first workload: %+v", ds.Workloads)
	}
}

func TestStepRefusesAnotherModelsWorkload(t *testing.T) {
	d := mustOpen(t, "s1")
	w, _, err := d.RegisterWorkload(sampleManifest(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Step(modelfleet.StepRequest{Release: "r", Model: "other", New: version("1", 100), Sites: []string{"s1"}, Workload: &w})
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "bearing-failure-line:1") {
		t.Errorf("err = %v", err)
	}
	tampered := w
	tampered.Manifest += "# edited\n"
	_, err = d.Step(modelfleet.StepRequest{Release: "r", Model: "bearing-failure", New: version("1", 100), Sites: []string{"s1"}, Workload: &tampered})
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("tampered manifest: %v", err)
	}
	if ds := desired(t, d, "s1"); ds.Revision != 0 || len(ds.Workloads) != 0 {
		t.Errorf("a refused step changed the site: %+v", ds)
	}
}

func TestWorkloadFailureFailsTheSiteAndPairings(t *testing.T) {
	d := mustOpen(t, "s1", "s2")
	w, _, err := d.RegisterWorkload(sampleManifest(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r", Model: "bearing-failure", New: version("1", 100), Sites: []string{"s1"}, Workload: &w}); err != nil {
		t.Fatal(err)
	}
	if err := d.ReportActual(modelfleet.Actual{Site: "s1", Revision: 1,
		Workloads: map[string]modelfleet.ActualWorkload{"bearing-failure-line": {Version: "1", Model: "bearing-failure", Error: "not ready"}}}); err != nil {
		t.Fatal(err)
	}
	p, err := d.Progress("bearing-failure", "1", []string{"s1"})
	if err != nil || len(p.Failed) != 1 || !strings.Contains(p.Failed[0].Reason, "not ready") {
		t.Errorf("progress = %+v, %v", p, err)
	}
	// A workload the site runs outside its agent, still rolling out: the
	// site applied the revision but waits for the workload's version.
	for _, c := range []struct {
		running string
		pending bool
	}{{"0", true}, {"", true}, {"1", false}} {
		if err := d.ReportActual(modelfleet.Actual{Site: "s1", Revision: 1,
			Workloads: map[string]modelfleet.ActualWorkload{"bearing-failure-line": {Version: c.running, Model: "bearing-failure", State: "rolling out"}}}); err != nil {
			t.Fatal(err)
		}
		p, err := d.Progress("bearing-failure", "1", []string{"s1"})
		if err != nil || (len(p.Pending) == 1) != c.pending || len(p.Failed) != 0 || (len(p.Converged) == 1) == c.pending {
			t.Errorf("version %q runs: progress = %+v, %v (pending %v)", c.running, p, err, c.pending)
		}
	}
	// s2 runs its built-in workload; no release set one.
	if err := d.ReportActual(modelfleet.Actual{Site: "s2", Workloads: map[string]modelfleet.ActualWorkload{
		"bearing-failure-line": {Version: "0", Model: "bearing-failure", Features: []string{"a"}}}}); err != nil {
		t.Fatal(err)
	}
	ps, err := d.Pairings("bearing-failure", []string{"s1", "s2"})
	if err != nil || len(ps) != 2 {
		t.Fatalf("pairings = %+v, %v", ps, err)
	}
	if w := ps[0].Workloads; len(w) != 1 || w[0].Source != "desired" || w[0].Version != "1" || len(w[0].Features) != 6 || len(ps[0].Versions) != 1 {
		t.Errorf("s1 = %+v", ps[0])
	}
	if w := ps[1].Workloads; len(w) != 1 || w[0].Source != "running" || w[0].Version != "0" {
		t.Errorf("s2 = %+v", ps[1])
	}
}

// A step with no model version carries the workload alone: the model's
// split stays, its lease keeps a model release out until finish or
// rollback, and the figures are the model's whatever the version.
func TestWorkloadOnlyStepKeepsTheModelsVersions(t *testing.T) {
	d := mustOpen(t, "s1")
	w1, _, err := d.RegisterWorkload(sampleManifest(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	w2, _, err := d.RegisterWorkload(sampleManifest(t, "2"))
	if err != nil {
		t.Fatal(err)
	}
	sites := []string{"s1"}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "bearing-failure", New: version("1", 100), Sites: sites, Workload: &w1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("r1", "bearing-failure", sites); err != nil {
		t.Fatal(err)
	}
	const wr = "release/bearing-failure/workload/bearing-failure-line/2"
	if _, err := d.Step(modelfleet.StepRequest{Release: wr, Model: "bearing-failure", Sites: sites}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("step with neither a model nor a workload version: %v, want invalid", err)
	}
	res, err := d.Step(modelfleet.StepRequest{Release: wr, Model: "bearing-failure", Sites: sites, Workload: &w2})
	if err != nil || res.Changed != 1 {
		t.Fatalf("workload step = %+v, %v", res, err)
	}
	ds := desired(t, d, "s1")
	dm := ds.Models["bearing-failure"]
	if got := modelfleet.SplitString(dm.Versions); got != "1:100" || dm.Release != wr {
		t.Errorf("model during the workload release = %s (lease %q), want 1:100 leased", got, dm.Release)
	}
	if got := ds.Workloads["bearing-failure-line"]; got.Version != "2" || got.Release != wr || got.Previous == nil || got.Previous.Version != "1" {
		t.Errorf("workload = %+v", got)
	}
	res, err = d.Step(modelfleet.StepRequest{Release: "release/bearing-failure/2", Model: "bearing-failure", New: version("2", 10), Sites: sites})
	if err != nil || len(res.Conflicts) != 1 || res.Conflicts[0].Holder != wr {
		t.Errorf("model release during the workload release = %+v, %v; want a conflict naming it", res, err)
	}
	if _, err := d.Rollback(wr, "bearing-failure", sites, ""); err != nil {
		t.Fatal(err)
	}
	ds = desired(t, d, "s1")
	if got := ds.Workloads["bearing-failure-line"]; got.Version != "1" || got.Release != "" {
		t.Errorf("workload after rollback = %+v, want 1", got)
	}
	if dm := ds.Models["bearing-failure"]; modelfleet.SplitString(dm.Versions) != "1:100" || dm.Release != "" {
		t.Errorf("model after rollback = %+v", dm)
	}

	if _, err := d.Step(modelfleet.StepRequest{Release: wr, Model: "bearing-failure", Sites: sites, Workload: &w2}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish(wr, "bearing-failure", sites); err != nil {
		t.Fatal(err)
	}
	ds = desired(t, d, "s1")
	if got := ds.Workloads["bearing-failure-line"]; got.Version != "2" || got.Release != "" || got.Previous != nil {
		t.Errorf("workload after finish = %+v, want 2 unleased", got)
	}
	if dm := ds.Models["bearing-failure"]; modelfleet.SplitString(dm.Versions) != "1:100" || dm.Release != "" {
		t.Errorf("model after finish = %+v", dm)
	}
	err = d.ReportActual(modelfleet.Actual{Site: "s1", Revision: ds.Revision, Models: map[string]modelfleet.ActualModel{
		"bearing-failure": {Versions: []modelfleet.ServedVersion{{Version: "1", Weight: 100, Requests: 40, Errors: 2, P99LatencyMs: 3}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Progress("bearing-failure", "", sites)
	if err != nil || len(p.Converged) != 1 || p.Requests != 40 || p.Errors != 2 || p.PredictionShift != 0 {
		t.Errorf("progress without a version = %+v, %v; want the model's figures", p, err)
	}
}

// A manifest naming a module registers only once the module is stored
// (uploaded under its digest, bounded, content-addressed with the mirrored
// artifacts, where sites download it).
func TestRegisterWorkloadWithModule(t *testing.T) {
	d := mustOpen(t)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	ctx := context.Background()
	code := []byte("\x00asm\x01\x00\x00\x00 pretend module")
	sum := sha256.Sum256(code)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	doc, err := spec.SetModuleDigest(sampleManifest(t, "2"), digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterWorkload(ctx, doc); modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "not uploaded") {
		t.Fatalf("a manifest naming a module not uploaded: %v", err)
	}
	if err := c.UploadWorkloadModule(ctx, "sha256:"+strings.Repeat("0", 64), code); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("a module under another digest: %v", err)
	}
	if err := c.UploadWorkloadModule(ctx, digest, code); err != nil {
		t.Fatal(err)
	}
	rec, err := c.RegisterWorkload(ctx, doc)
	if err != nil || rec.Version != "2" {
		t.Fatalf("%+v %v", rec, err)
	}
	// Sites read it from the artifact store.
	var buf bytes.Buffer
	if err := func() error {
		resp, err := http.Get(srv.URL + "/api/artifacts/" + digest)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = buf.ReadFrom(resp.Body)
		return err
	}(); err != nil || !bytes.Equal(buf.Bytes(), code) {
		t.Fatalf("GET /api/artifacts/%s: %q %v", digest, buf.Bytes(), err)
	}
	big := make([]byte, spec.MaxModuleBytes+1)
	bs := sha256.Sum256(big)
	if err := c.UploadWorkloadModule(ctx, "sha256:"+hex.EncodeToString(bs[:]), big); modelfleet.ErrorCode(err) != modelfleet.ETOOLARGE {
		t.Errorf("a module above the limit: %v", err)
	}
}

// A plan's pairings carry each site's versions without their release
// statements (a pairing check reads versions and features), and leave
// the statements in the site's desired state.
func TestPairingsLeaveStatementsOut(t *testing.T) {
	d := mustOpen(t, "s1")
	v := version("1", 100)
	v.Statement = &modelfleet.Envelope{PayloadType: modelfleet.InTotoPayloadType, Payload: []byte("{}"), Signatures: []modelfleet.Signature{{KeyID: "k", Sig: []byte("sig")}}}
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: v, Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	ps, err := d.Pairings("m", []string{"s1"})
	if err != nil || len(ps) != 1 || len(ps[0].Versions) != 1 || ps[0].Versions[0].Version != "1" {
		t.Fatalf("pairings = %+v, %v", ps, err)
	}
	if ps[0].Versions[0].Statement != nil {
		t.Error("a pairing carries the version's release statement")
	}
	ds, err := d.Desired(context.Background(), "s1", -1)
	if err != nil || ds.Models["m"].Versions[0].Statement == nil {
		t.Errorf("desired state after pairings = %+v, %v: the statement went", ds, err)
	}
}
