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

	"github.com/modelfleet/modelfleet/drivers/gitops"
)

// The overlay builds with kustomize as Flux would build it: kubectl's
// embedded kustomize, when kubectl is on PATH (it is not a dependency of the
// project, so without it the test skips).
func TestOverlayBuildsWithKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	files, err := gitops.Render(gitops.Config{Image: "modelfleet:test"}, site("plant-a"), desired("plant-a", 7, v("2", 'b', 10), v("1", 'a', 90)))
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
	var dep appsv1.Deployment
	var kinds []string
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var head struct{ Kind string }
		_ = yaml.Unmarshal([]byte(doc), &head)
		kinds = append(kinds, head.Kind)
		switch head.Kind {
		case "Deployment":
			strict(t, doc, &dep)
		case "Service":
			strict(t, doc, &corev1.Service{})
		case "ConfigMap":
			strict(t, doc, &corev1.ConfigMap{})
		}
	}
	if strings.Join(kinds, ",") != "ConfigMap,Service,Deployment" {
		t.Fatalf("kinds %v", kinds)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if dep.Namespace != "modelfleet" || dep.Spec.Template.Annotations["modelfleet.io/desired-revision"] != "7" || c.Env[0].Value != "plant-a" || c.Image != "modelfleet:test" {
		t.Fatalf("patched deployment: ns %q, annotations %v, env %v", dep.Namespace, dep.Spec.Template.Annotations, c.Env)
	}
	if dep.Labels["modelfleet.io/site"] != "plant-a" || dep.Spec.Selector.MatchLabels["modelfleet.io/site"] != "" {
		t.Fatalf("labels %v, selector %v: the site label must not reach the immutable selector", dep.Labels, dep.Spec.Selector.MatchLabels)
	}
}
