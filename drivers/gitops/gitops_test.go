package gitops_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers"
	"github.com/modelfleet/modelfleet/drivers/gitops"
)

// In the external test package: drivers' factory imports gitops.
var _ drivers.Driver = (*gitops.Driver)(nil)

func remote(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fleet.git")
	if _, err := git.PlainInit(dir, true); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newDriver(t *testing.T, url string, mod func(*gitops.Config)) *gitops.Driver {
	t.Helper()
	cfg := gitops.Config{URL: url, Image: "modelfleet:test", GatewayURL: "http://gw:8080"}
	if mod != nil {
		mod(&cfg)
	}
	d, err := gitops.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func desired(site string, rev int64, split ...modelfleet.DesiredVersion) modelfleet.Desired {
	return modelfleet.Desired{Site: site, Revision: rev, Models: map[string]modelfleet.DesiredModel{
		// The release's wave and approver travel in the desired state, for
		// the commit message.
		"bearing-failure": {Versions: split, Release: "release/bearing-failure/2", Wave: "canary", ApprovedBy: "alice"},
	}}
}

func v(version string, c byte, w int) modelfleet.DesiredVersion {
	return modelfleet.DesiredVersion{Version: version, Digest: digest(c), Format: "lightgbm", ArtifactURL: "http://registry/blobs/" + digest(c), Weight: w}
}

func site(id string) modelfleet.Site {
	return modelfleet.Site{ID: id, TaskQueue: "q", Driver: "gitops"}
}

// history is the remote branch's commits, newest first.
func history(t *testing.T, url string) []*object.Commit {
	t.Helper()
	r, err := git.PlainOpen(url)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := r.Reference(plumbing.NewBranchReferenceName("main"), true)
	if err != nil {
		t.Fatal(err)
	}
	it, err := r.Log(&git.LogOptions{From: ref.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	var cs []*object.Commit
	_ = it.ForEach(func(c *object.Commit) error { cs = append(cs, c); return nil })
	return cs
}

func file(t *testing.T, c *object.Commit, p string) string {
	t.Helper()
	f, err := c.File(p)
	if err != nil {
		t.Fatalf("%s at %s: %v", p, c.Hash, err)
	}
	s, err := f.Contents()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// touched is every path a commit changed against its parent.
func touched(t *testing.T, c *object.Commit) []string {
	t.Helper()
	var from *object.Tree
	if c.NumParents() > 0 {
		p, err := c.Parent(0)
		if err != nil {
			t.Fatal(err)
		}
		from, _ = p.Tree()
	}
	to, _ := c.Tree()
	if from == nil {
		from = &object.Tree{}
	}
	changes, err := from.Diff(to)
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, ch := range changes {
		ps = append(ps, ch.From.Name+ch.To.Name)
	}
	return ps
}

func TestCommitsOneChangePerCommit(t *testing.T) {
	url := remote(t)
	d := newDriver(t, url, nil)
	ctx := context.Background()
	s := site("plant-a")
	steps := []modelfleet.Desired{
		desired(s.ID, 1, v("1", 'a', 100)),
		desired(s.ID, 2, v("2", 'b', 10), v("1", 'a', 90)),
		desired(s.ID, 3, v("2", 'b', 100)),
	}
	for _, ds := range steps {
		a, err := d.Apply(ctx, s, ds)
		if err != nil {
			t.Fatal(err)
		}
		if a.Revision != ds.Revision || len(a.Models["bearing-failure"].Versions) != len(ds.Models["bearing-failure"].Versions) {
			t.Fatalf("actual %+v", a)
		}
	}
	// The same state again is no commit.
	if _, err := d.Apply(ctx, s, steps[2]); err != nil {
		t.Fatal(err)
	}
	cs := history(t, url)
	if len(cs) != 3 {
		t.Fatalf("%d commits, want 3", len(cs))
	}
	msg := cs[1].Message
	for _, want := range []string{"plant-a: r2 bearing-failure 2:10,1:90", "Modelfleet-Release: release/bearing-failure/2", "Modelfleet-Wave: canary", "Modelfleet-Approved-By: alice", "Modelfleet-Revision: 2"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("commit message %q lacks %q", msg, want)
		}
	}
	// After the first commit (which also wrote the base) only the
	// cluster's directory changes.
	for _, c := range cs[:2] {
		for _, p := range touched(t, c) {
			if !strings.HasPrefix(p, "clusters/plant-a/") {
				t.Fatalf("commit %s touched %s", c.Hash, p)
			}
		}
	}
	// The manifests decode strictly into the Kubernetes API types.
	head := cs[0]
	var cm corev1.ConfigMap
	strict(t, file(t, head, "clusters/plant-a/desired.yaml"), &cm)
	var got modelfleet.Desired
	if err := yaml.Unmarshal([]byte(cm.Data[gitops.DesiredKey]), &got); err != nil || got.Revision != 3 || got.Models["bearing-failure"].Versions[0].Version != "2" {
		t.Fatalf("desired in the ConfigMap: %+v %v", got, err)
	}
	var dep appsv1.Deployment
	strict(t, file(t, head, "base/edge-agent/deployment.yaml"), &dep)
	if dep.Spec.Template.Spec.Volumes[1].EmptyDir == nil || dep.Spec.Template.Spec.Containers[0].Image != "modelfleet:test" {
		t.Fatalf("deployment %+v", dep.Spec.Template.Spec)
	}
	var patch appsv1.Deployment
	strict(t, file(t, head, "clusters/plant-a/agent-patch.yaml"), &patch)
	if patch.Spec.Template.Annotations["modelfleet.io/desired-revision"] != "3" || patch.Spec.Template.Spec.Containers[0].Env[0].Value != "plant-a" {
		t.Fatalf("patch %+v", patch.Spec.Template)
	}
	var svc corev1.Service
	strict(t, file(t, head, "base/edge-agent/service.yaml"), &svc)
	k := file(t, head, "clusters/plant-a/kustomization.yaml")
	for _, want := range []string{"../../base/edge-agent", "desired.yaml", "agent-patch.yaml", "namespace: modelfleet"} {
		if !strings.Contains(k, want) {
			t.Fatalf("kustomization lacks %q:\n%s", want, k)
		}
	}
}

func strict(t *testing.T, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("strict decode: %v\n%s", err, doc)
	}
}

// Another writer pushes between our fetch and our push: the push is
// rejected as non-fast-forward, and the driver fetches, re-applies its
// change on top of theirs and pushes again, keeping their commit.
func TestRejectedPushIsReapplied(t *testing.T) {
	url := remote(t)
	ctx := context.Background()
	a, b := newDriver(t, url, nil), newDriver(t, url, nil)
	if _, err := a.Apply(ctx, site("plant-a"), desired("plant-a", 1, v("1", 'a', 100))); err != nil {
		t.Fatal(err)
	}
	pushes := 0
	gitops.SetBeforePush(a, func() {
		pushes++
		if pushes == 1 {
			if _, err := b.Apply(ctx, site("plant-b"), desired("plant-b", 1, v("1", 'a', 100))); err != nil {
				t.Error(err)
			}
		}
	})
	if _, err := a.Apply(ctx, site("plant-a"), desired("plant-a", 2, v("2", 'b', 50), v("1", 'a', 50))); err != nil {
		t.Fatal(err)
	}
	if pushes != 2 {
		t.Fatalf("%d pushes, want a rejected one and its retry", pushes)
	}
	cs := history(t, url)
	if len(cs) != 3 || !strings.HasPrefix(cs[0].Message, "plant-a: r2") || !strings.HasPrefix(cs[1].Message, "plant-b: r1") {
		t.Fatalf("history: %v", subjects(cs))
	}
	file(t, cs[0], "clusters/plant-b/desired.yaml") // theirs survived
}

func subjects(cs []*object.Commit) []string {
	var s []string
	for _, c := range cs {
		s = append(s, strings.SplitN(c.Message, "\n", 2)[0])
	}
	return s
}

// Releases to different sites from two control-plane replicas at once: every
// change lands, each as its own commit, whatever the interleaving.
func TestConcurrentReleasesToDifferentSites(t *testing.T) {
	url := remote(t)
	ctx := context.Background()
	replicas := []*gitops.Driver{newDriver(t, url, nil), newDriver(t, url, nil)}
	const sites, revs = 6, 3
	var wg sync.WaitGroup
	errs := make(chan error, sites*revs)
	for i := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := replicas[i%len(replicas)]
			s := site(fmt.Sprintf("plant-%d", i))
			for rev := int64(1); rev <= revs; rev++ {
				if _, err := d.Apply(ctx, s, desired(s.ID, rev, v(fmt.Sprint(rev), 'a'+byte(rev), 100))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cs := history(t, url)
	if len(cs) != sites*revs {
		t.Fatalf("%d commits, want %d: %v", len(cs), sites*revs, subjects(cs))
	}
	for i := range sites {
		var cm corev1.ConfigMap
		strict(t, file(t, cs[0], path.Join("clusters", fmt.Sprintf("plant-%d", i), "desired.yaml")), &cm)
		if !strings.Contains(cm.Data["weights.txt"], fmt.Sprintf("bearing-failure %d:100", revs)) {
			t.Fatalf("plant-%d ends at %q", i, cm.Data["weights.txt"])
		}
	}
}

func TestPullRequestBranch(t *testing.T) {
	url := remote(t)
	ctx := context.Background()
	d := newDriver(t, url, nil)
	s := site("plant-a")
	if _, err := d.Apply(ctx, s, desired(s.ID, 1, v("1", 'a', 100))); err != nil {
		t.Fatal(err)
	}
	pr := newDriver(t, url, func(c *gitops.Config) { c.PullRequests = true })
	next := desired(s.ID, 2, v("2", 'b', 100))
	_, err := pr.Apply(ctx, s, next)
	if err == nil || !strings.Contains(err.Error(), "pull request") {
		t.Fatalf("apply for review: %v, want a retryable wait for the merge", err)
	}
	r, _ := git.PlainOpen(url)
	branch, err := r.Reference(plumbing.NewBranchReferenceName("modelfleet/plant-a/r2"), true)
	if err != nil {
		t.Fatalf("review branch: %v", err)
	}
	if len(history(t, url)) != 1 {
		t.Fatal("main moved before the merge")
	}
	// Someone merges (fast-forwards main to the review branch).
	if err := r.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("main"), branch.Hash())); err != nil {
		t.Fatal(err)
	}
	if a, err := pr.Apply(ctx, s, next); err != nil || a.Revision != 2 {
		t.Fatalf("after the merge: %v %+v", err, a)
	}
}

func TestPlanRefusesWhatAConfigMapCannotHold(t *testing.T) {
	d := newDriver(t, remote(t), nil)
	s := site("plant-a")
	big := desired(s.ID, 1, v("1", 'a', 100))
	dm := big.Models["bearing-failure"]
	dm.Versions[0].Features = make([]string, 60000)
	for i := range dm.Versions[0].Features {
		dm.Versions[0].Features[i] = fmt.Sprintf("feature-%06d", i)
	}
	big.Models["bearing-failure"] = dm
	err := d.Plan(context.Background(), []modelfleet.Site{s}, map[string]modelfleet.Desired{s.ID: big})
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "ConfigMap") {
		t.Fatalf("plan: %v", err)
	}
	if err := d.Plan(context.Background(), []modelfleet.Site{s}, map[string]modelfleet.Desired{s.ID: desired(s.ID, 1, v("1", 'a', 100))}); err != nil {
		t.Fatal(err)
	}
}

func TestUnreachableRemoteIsRetryable(t *testing.T) {
	d := newDriver(t, filepath.Join(t.TempDir(), "missing.git"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := d.Apply(ctx, site("plant-a"), desired("plant-a", 1, v("1", 'a', 100)))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("apply to a missing remote: %v", err)
	}
}
