package fleet

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func hashOf(c string) string { return strings.Repeat(c, 64) }

func TestSetAPIKeys(t *testing.T) {
	d := mustOpen(t)
	for id, plant := range map[string]string{"s1": "a", "s2": "a", "s3": "b"} {
		if _, err := d.Put(modelfleet.Site{ID: id, TaskQueue: modelfleet.SiteTaskQueue(id), Labels: map[string]string{"plant": plant}}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(req modelfleet.APIKeysRequest) modelfleet.APIKeysResult {
		t.Helper()
		res, err := d.SetAPIKeys(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := set(modelfleet.APIKeysRequest{Selector: map[string]string{"plant": "a"}, Model: "m", SHA256: []string{hashOf("a")}})
	if !reflect.DeepEqual(res.Sites, []string{"s1", "s2"}) || res.Changed != 2 {
		t.Fatalf("selector: %+v", res)
	}
	rev := desired(t, d, "s1").Revision
	// The same keys again: no new revision for the agents to apply.
	if res := set(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "m", SHA256: []string{hashOf("a")}}); res.Changed != 0 || res.Unchanged != 1 {
		t.Errorf("unchanged keys: %+v", res)
	}
	set(modelfleet.APIKeysRequest{All: true, SHA256: []string{hashOf("b"), hashOf("c")}})
	ds := desired(t, d, "s1")
	want := &modelfleet.APIKeys{SHA256: []string{hashOf("b"), hashOf("c")}, Models: map[string]modelfleet.KeyHashes{"m": {SHA256: []string{hashOf("a")}}}}
	if !reflect.DeepEqual(ds.APIKeys, want) || ds.Revision != rev+1 {
		t.Fatalf("s1 keys = %+v at revision %d, want %+v at %d", ds.APIKeys, ds.Revision, want, rev+1)
	}
	if got := desired(t, d, "s3").APIKeys; got == nil || got.Models != nil {
		t.Errorf("s3 (plant b) keys = %+v, want site-wide only", got)
	}

	// Releases keep the keys: a step, a rollback, a finish.
	if _, err := d.Step(modelfleet.StepRequest{Release: "r1", Model: "m", New: version("1", 100), Sites: []string{"s1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Rollback("r1", "m", []string{"s1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Finish("r1", "m", []string{"s1"}); err != nil {
		t.Fatal(err)
	}
	if got := desired(t, d, "s1").APIKeys; !reflect.DeepEqual(got, want) {
		t.Errorf("after a release: keys = %+v, want %+v", got, want)
	}

	// No hashes remove a scope; with none left, the field goes.
	set(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "m"})
	set(modelfleet.APIKeysRequest{Sites: []string{"s1"}})
	if got := desired(t, d, "s1").APIKeys; got != nil {
		t.Errorf("all scopes removed: keys = %+v, want none", got)
	}
}

func TestSetAPIKeysRejects(t *testing.T) {
	d := mustOpen(t, "s1")
	before := desired(t, d, "s1")
	for name, c := range map[string]struct {
		req  modelfleet.APIKeysRequest
		code string
	}{
		"no sites":        {modelfleet.APIKeysRequest{SHA256: []string{hashOf("a")}}, modelfleet.EINVALID},
		"two ways":        {modelfleet.APIKeysRequest{All: true, Sites: []string{"s1"}}, modelfleet.EINVALID},
		"unknown site":    {modelfleet.APIKeysRequest{Sites: []string{"s1", "s9"}, SHA256: []string{hashOf("a")}}, modelfleet.ENOTFOUND},
		"no match":        {modelfleet.APIKeysRequest{Selector: map[string]string{"plant": "z"}, SHA256: []string{hashOf("a")}}, modelfleet.ENOTFOUND},
		"bad hash":        {modelfleet.APIKeysRequest{Sites: []string{"s1"}, SHA256: []string{"secret"}}, modelfleet.EINVALID},
		"upper-case hash": {modelfleet.APIKeysRequest{Sites: []string{"s1"}, SHA256: []string{hashOf("A")}}, modelfleet.EINVALID},
		"bad model":       {modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "../m", SHA256: []string{hashOf("a")}}, modelfleet.EINVALID},
		"site twice":      {modelfleet.APIKeysRequest{Sites: []string{"s1", "s1"}}, modelfleet.EINVALID},
	} {
		if _, err := d.SetAPIKeys(c.req); modelfleet.ErrorCode(err) != c.code {
			t.Errorf("%s: %v, want %s", name, err, c.code)
		}
	}
	// A site at the bound of models with keys takes no more.
	for i := range modelfleet.MaxAPIKeyModels {
		if _, err := d.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: fmt.Sprintf("m%d", i), SHA256: []string{hashOf("a")}}); err != nil {
			t.Fatal(err)
		}
	}
	before = desired(t, d, "s1")
	if _, err := d.SetAPIKeys(modelfleet.APIKeysRequest{Sites: []string{"s1"}, Model: "one-more", SHA256: []string{hashOf("a")}}); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
		t.Errorf("model %d: %v, want invalid", modelfleet.MaxAPIKeyModels+1, err)
	}
	if after := desired(t, d, "s1"); !reflect.DeepEqual(before, after) {
		t.Error("a refused request changed the desired state")
	}
}
