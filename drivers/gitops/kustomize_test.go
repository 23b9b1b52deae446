package gitops_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers/gitops"
)

// The overlay builds with kustomize as Flux would build it.
func TestOverlayBuildsWithKustomize(t *testing.T) {
	deps := build(t, gitops.Config{Image: "modelfleet:test"}, desired("plant-a", 7, v("2", 'b', 10), v("1", 'a', 90)), "ConfigMap,Service,Deployment")
	checkAgent(t, deps["modelfleet-edge"])
}

// With a workload, the overlay builds too: its ConfigMap and Deployment in
// the site's namespace, labelled with the site.
func TestOverlayWithAWorkloadBuildsWithKustomize(t *testing.T) {
	deps := build(t, workloadCfg, withWorkload(t, desired("plant-a", 7, v("2", 'b', 10), v("1", 'a', 90))), "ConfigMap,ConfigMap,Service,Service,Deployment,Deployment")
	checkAgent(t, deps["modelfleet-edge"])
	w := deps["modelfleet-workload-bearing-failure-line"]
	if w.Namespace != "modelfleet" || w.Labels["modelfleet.io/site"] != "plant-a" || w.Spec.Template.Spec.Containers[0].Args[3] != "plant-a" {
		t.Fatalf("workload deployment: ns %q, labels %v, args %q", w.Namespace, w.Labels, w.Spec.Template.Spec.Containers[0].Args)
	}
}

// build writes the rendered files and builds the site's overlay with
// kustomize as Flux would build it: kubectl's embedded kustomize, when
// kubectl is on PATH (it is not a dependency of the project, so without it
// the test skips). It checks the kinds and returns the Deployments by name.
func build(t *testing.T, cfg gitops.Config, ds modelfleet.Desired, wantKinds string) map[string]appsv1.Deployment {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	files, err := gitops.Render(cfg, site("plant-a"), ds)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for p, b := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, gitops.ClusterDir("plant-a"))).CombinedOutput()
	if err != nil {
		t.Fatalf("kustomize: %v\n%s", err, out)
	}
	deps := map[string]appsv1.Deployment{}
	var kinds []string
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var head struct{ Kind string }
		_ = yaml.Unmarshal([]byte(doc), &head)
		kinds = append(kinds, head.Kind)
		switch head.Kind {
		case "Deployment":
			var dep appsv1.Deployment
			strict(t, doc, &dep)
			deps[dep.Name] = dep
		case "Service":
			strict(t, doc, &corev1.Service{})
		case "ConfigMap":
			strict(t, doc, &corev1.ConfigMap{})
		}
	}
	if strings.Join(kinds, ",") != wantKinds {
		t.Fatalf("kinds %v, want %s", kinds, wantKinds)
	}
	return deps
}

func checkAgent(t *testing.T, dep appsv1.Deployment) {
	t.Helper()
	c := dep.Spec.Template.Spec.Containers[0]
	if dep.Namespace != "modelfleet" || dep.Spec.Template.Annotations["modelfleet.io/desired-revision"] != "7" || c.Env[0].Value != "plant-a" || c.Image != "modelfleet:test" {
		t.Fatalf("patched deployment: ns %q, annotations %v, env %v", dep.Namespace, dep.Spec.Template.Annotations, c.Env)
	}
	if dep.Labels["modelfleet.io/site"] != "plant-a" || dep.Spec.Selector.MatchLabels["modelfleet.io/site"] != "" {
		t.Fatalf("labels %v, selector %v: the site label must not reach the immutable selector", dep.Labels, dep.Spec.Selector.MatchLabels)
	}
}
