package edge

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/modelfleet/modelfleet"
)

const goodRow = `{"temp":1,"vibration":2,"rpm":3}`

func scoreOK(t *testing.T, a *Agent, model string) scoreResponse {
	t.Helper()
	rec := do(a.Handler(), "POST", "/score/"+model, goodRow)
	if rec.Code != 200 {
		t.Fatalf("score %s = %d %s", model, rec.Code, rec.Body)
	}
	var r scoreResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDeployIsIdempotent(t *testing.T) {
	a := openAgent(t, t.TempDir())
	data := fakeArtifact(0, 1, 1, 1)
	req := deployReq("bearing-failure", "1", data)
	f := &fetcher{data: data}
	first, err := a.Deploy(context.Background(), req, f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Changed || first.Site != "site-1" || first.Model != req.Model || first.Digest != req.Digest || first.LoadedAt.IsZero() {
		t.Errorf("first deploy = %+v", first)
	}
	again, err := a.Deploy(context.Background(), req, f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed || !again.LoadedAt.Equal(first.LoadedAt) {
		t.Errorf("second deploy = %+v, want Changed false and LoadedAt %v", again, first.LoadedAt)
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
	if r := scoreOK(t, a, "bearing-failure"); r.Version != "1" || r.Site != "site-1" {
		t.Errorf("score = %+v", r)
	}
}

func TestRestartServesLastGoodWithoutFetch(t *testing.T) {
	dir := t.TempDir()
	a := openAgent(t, dir)
	data := fakeArtifact(0.5, 1, -1, 0.25)
	req := deployReq("bearing-failure", "7", data)
	res := mustDeploy(t, a, req, data)
	before := scoreOK(t, a, "bearing-failure")

	b := openAgent(t, dir) // Open itself has no way to fetch
	if got, want := b.Served(), a.Served(); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("served after restart = %+v, want %+v", got, want)
	}
	if after := scoreOK(t, b, "bearing-failure"); !reflect.DeepEqual(after, before) {
		t.Errorf("score after restart = %+v, want %+v", after, before)
	}
	if rec := do(b.Handler(), "GET", "/readyz", ""); rec.Code != 200 {
		t.Errorf("readyz after restart = %d", rec.Code)
	}
	// The deploy activity retried after the restart is still a no-op.
	again, err := b.Deploy(context.Background(), req, noFetch(t))
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed || !again.LoadedAt.Equal(res.LoadedAt) {
		t.Errorf("deploy after restart = %+v, want unchanged since %v", again, res.LoadedAt)
	}
}

func TestCorruptModelDoesNotStopOthers(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(path string) error
	}{
		{"corrupt", func(p string) error { return os.WriteFile(p, []byte("linear 0 1 2 3 and garbage"), 0o644) }},
		{"missing", os.Remove},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dir := t.TempDir()
			a := openAgent(t, dir)
			goodData, badData := fakeArtifact(0, 1, 1, 1), fakeArtifact(1, 2, 2, 2)
			good, bad := deployReq("good", "1", goodData), deployReq("bad", "1", badData)
			mustDeploy(t, a, good, goodData)
			mustDeploy(t, a, bad, badData)
			if err := damage.do(a.store.Path(bad.Model, bad.Digest)); err != nil {
				t.Fatal(err)
			}

			b := openAgent(t, dir)
			served := b.Served()
			if len(served) != 1 || served[0].Name != "good" {
				t.Fatalf("served = %+v, want only good", served)
			}
			scoreOK(t, b, "good")
			if rec := do(b.Handler(), "POST", "/score/bad", goodRow); rec.Code != 404 {
				t.Errorf("score bad = %d, want 404", rec.Code)
			}
			// The next deploy of it repairs the site.
			res := mustDeploy(t, b, bad, badData)
			if !res.Changed {
				t.Errorf("redeploy of damaged model = %+v, want Changed", res)
			}
			scoreOK(t, b, "bad")
		})
	}
}

func TestModelThatFailsToLoadNeverBecomesLastGood(t *testing.T) {
	dir := t.TempDir()
	a := openAgent(t, dir)
	v1 := fakeArtifact(0, 1, 1, 1)
	mustDeploy(t, a, deployReq("m", "1", v1), v1)

	cases := map[string]struct {
		data   []byte
		mutate func(*DeployRequest)
	}{
		"unparseable":      {data: []byte("not a model")},
		"feature mismatch": {data: fakeArtifact(0, 1, 1)}, // 2 weights, 3 declared features
		"wrong format":     {data: fakeArtifact(0, 1, 1, 1), mutate: func(r *DeployRequest) { r.Format = "pmml" }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			req := deployReq("m", "2", c.data)
			if c.mutate != nil {
				c.mutate(&req)
			}
			f := &fetcher{data: c.data}
			_, err := a.Deploy(context.Background(), req, f.fetch)
			if code := modelfleet.ErrorCode(err); code != modelfleet.EINVALID {
				t.Fatalf("Deploy = %v (code %q), want %q", err, code, modelfleet.EINVALID)
			}
			if r := scoreOK(t, a, "m"); r.Version != "1" {
				t.Errorf("serving %q after a failed deploy, want 1", r.Version)
			}
		})
	}
	b := openAgent(t, dir)
	if s := b.Served(); len(s) != 1 || s[0].Version != "1" {
		t.Errorf("served after restart = %+v, want version 1", s)
	}
}

func TestLoaderPanicIsAnError(t *testing.T) {
	a, err := Open(t.TempDir(), Config{SiteID: "site-1", Vectorizer: fakeVector,
		Loader: func(string, []byte) (Scorer, error) { panic("index out of range") }})
	if err != nil {
		t.Fatal(err)
	}
	data := fakeArtifact(0, 1, 1, 1)
	f := &fetcher{data: data}
	if _, err := a.Deploy(context.Background(), deployReq("m", "1", data), f.fetch); err == nil {
		t.Fatal("Deploy succeeded with a panicking loader")
	}
	if len(a.store.State().Models) != 0 {
		t.Error("a model that panicked the loader was recorded as last good")
	}
}

func TestRollbackUsesKeptVersionWithoutFetch(t *testing.T) {
	a := openAgent(t, t.TempDir())
	v1, v2 := fakeArtifact(0, 1, 1, 1), fakeArtifact(0, -1, -1, -1)
	mustDeploy(t, a, deployReq("m", "1", v1), v1)
	mustDeploy(t, a, deployReq("m", "2", v2), v2)
	res, err := a.Deploy(context.Background(), deployReq("m", "1", v1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Errorf("rollback = %+v, want Changed", res)
	}
	if r := scoreOK(t, a, "m"); r.Version != "1" {
		t.Errorf("serving %q after rollback, want 1", r.Version)
	}
}

func TestDeployRejectsBadRequests(t *testing.T) {
	a := openAgent(t, t.TempDir())
	data := fakeArtifact(0, 1, 1, 1)
	for name, mutate := range map[string]func(*DeployRequest){
		"path traversal":    func(r *DeployRequest) { r.Model.Name = "../etc" },
		"bad digest":        func(r *DeployRequest) { r.Digest = "md5:abc" },
		"no format":         func(r *DeployRequest) { r.Format = "" },
		"no features":       func(r *DeployRequest) { r.Features = nil },
		"duplicate feature": func(r *DeployRequest) { r.Features = []string{"a", "a", "b"} },
	} {
		t.Run(name, func(t *testing.T) {
			req := deployReq("m", "1", data)
			mutate(&req)
			_, err := a.Deploy(context.Background(), req, noFetch(t))
			if code := modelfleet.ErrorCode(err); code != modelfleet.EINVALID {
				t.Errorf("Deploy = %v (code %q), want %q", err, code, modelfleet.EINVALID)
			}
		})
	}
}

func TestOpenRequiresConfig(t *testing.T) {
	if _, err := Open(t.TempDir(), Config{SiteID: "site-1"}); err == nil {
		t.Error("Open without loader and vectorizer succeeded")
	}
	if _, err := Open(t.TempDir(), Config{SiteID: "no/slash", Loader: fakeLoad, Vectorizer: fakeVector}); err == nil {
		t.Error("Open with an invalid site id succeeded")
	}
}
