package gitops_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/drivers/gitops"
)

func exampleWorkload(t *testing.T) modelfleet.DesiredWorkload {
	t.Helper()
	b, err := os.ReadFile("../../examples/bearing-failure/workload/workload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return modelfleet.DesiredWorkload{Version: "1", Model: "bearing-failure", Digest: "sha256:" + hex.EncodeToString(sum[:]), Manifest: string(b)}
}

func withWorkload(t *testing.T, ds modelfleet.Desired) modelfleet.Desired {
	ds.Workloads = map[string]modelfleet.DesiredWorkload{"bearing-failure-line": exampleWorkload(t)}
	return ds
}

var workloadCfg = gitops.Config{Image: "modelfleet:test", MQTTURL: "mqtt://mosquitto.factory:1883", WorkloadKeySecret: "router-key"}

// A site whose desired state names a workload gets, in its overlay, the
// manifest as a ConfigMap and a Deployment running `modelfleet workload run`
// against the agent's router; a site without one gets neither.
func TestRendersAWorkloadDeployment(t *testing.T) {
	dw := exampleWorkload(t)
	files, err := gitops.Render(workloadCfg, site("plant-a"), withWorkload(t, desired("plant-a", 4, v("1", 'a', 100))))
	if err != nil {
		t.Fatal(err)
	}
	dir := gitops.ClusterDir("plant-a") + "/"
	var cm corev1.ConfigMap
	strict(t, string(files[dir+"workload-bearing-failure-line-manifest.yaml"]), &cm)
	if cm.Kind != "ConfigMap" || cm.Name != "modelfleet-workload-bearing-failure-line" || cm.Data[gitops.WorkloadKey] != dw.Manifest {
		t.Fatalf("configmap %+v", cm)
	}
	var dep appsv1.Deployment
	strict(t, string(files[dir+"workload-bearing-failure-line.yaml"]), &dep)
	if dep.Kind != "Deployment" || dep.Name != "modelfleet-workload-bearing-failure-line" || *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Fatalf("deployment %s: replicas %v, strategy %q", dep.Name, dep.Spec.Replicas, dep.Spec.Strategy.Type)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{"workload", "run", "--site", "plant-a", "--manifest", "/etc/modelfleet/workload/workload.yaml",
		"--broker", "$(MODELFLEET_MQTT_URL)", "--router", "http://modelfleet-edge:9001", "--listen", "0.0.0.0:9100",
		"--data-dir", "/var/lib/modelfleet", "--key-file", "/etc/modelfleet/router-key/key"}
	if c.Image != "modelfleet:test" || !slices.Equal(c.Args, wantArgs) {
		t.Fatalf("container image %q args %q, want %q", c.Image, c.Args, wantArgs)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["MODELFLEET_MQTT_URL"] != workloadCfg.MQTTURL || env["MODELFLEET_SITE"] != "plant-a" || env["MODELFLEET_ROUTER_KEY_FILE"] != "/etc/modelfleet/router-key/key" ||
		env["MODELFLEET_WORKLOAD_MANIFEST"] != "/etc/modelfleet/workload/workload.yaml" || env["MODELFLEET_ROUTER_URL"] != "http://modelfleet-edge:9001" {
		t.Fatalf("env %+v", c.Env)
	}
	var svc corev1.Service
	strict(t, string(files[dir+"workload-bearing-failure-line-service.yaml"]), &svc)
	if svc.Name != dep.Name || svc.Spec.Selector["app.kubernetes.io/instance"] != "bearing-failure-line" || svc.Spec.Ports[0].Port != 9100 {
		t.Fatalf("service %+v", svc)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != "health" || c.Ports[0].ContainerPort != 9100 {
		t.Fatalf("readiness %+v, ports %+v", c.ReadinessProbe, c.Ports)
	}
	if c.Resources.Requests.Cpu().MilliValue() > 100 || c.Resources.Limits.Memory().Value() > 256<<20 || c.Resources.Limits.Memory().IsZero() {
		t.Fatalf("resources %+v", c.Resources)
	}
	if pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != cm.Name || pod.Volumes[2].Secret == nil || pod.Volumes[2].Secret.SecretName != "router-key" {
		t.Fatalf("volumes %+v", pod.Volumes)
	}
	if dep.Spec.Template.Annotations["modelfleet.io/workload-digest"] != dw.Digest || dep.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "bearing-failure-line" {
		t.Fatalf("template %+v, selector %+v", dep.Spec.Template.ObjectMeta, dep.Spec.Selector)
	}
	if k := string(files[dir+"kustomization.yaml"]); !strings.Contains(k, "workload-bearing-failure-line.yaml") || !strings.Contains(k, "workload-bearing-failure-line-manifest.yaml") {
		t.Fatalf("kustomization does not list the workload:\n%s", k)
	}

	// Without a key Secret, no --key-file.
	files, err = gitops.Render(gitops.Config{MQTTURL: "mqtt://b:1883"}, site("plant-a"), withWorkload(t, desired("plant-a", 4, v("1", 'a', 100))))
	if err != nil {
		t.Fatal(err)
	}
	strict(t, string(files[dir+"workload-bearing-failure-line.yaml"]), &dep)
	if slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--key-file") || len(dep.Spec.Template.Spec.Volumes) != 2 {
		t.Fatalf("without a key secret: args %q", dep.Spec.Template.Spec.Containers[0].Args)
	}

	// No workload, no workload objects.
	files, err = gitops.Render(workloadCfg, site("plant-a"), desired("plant-a", 5, v("1", 'a', 100)))
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		if strings.Contains(p, "workload") || strings.Contains(string(b), "modelfleet-workload") {
			t.Fatalf("%s renders a workload without one desired", p)
		}
	}
}

func TestWorkloadNeedsABrokerAndAKubernetesName(t *testing.T) {
	_, err := gitops.Render(gitops.Config{}, site("plant-a"), withWorkload(t, desired("plant-a", 4, v("1", 'a', 100))))
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "MQTT broker URL") {
		t.Fatalf("without an MQTT URL: %v", err)
	}
	ds := desired("plant-a", 4, v("1", 'a', 100))
	ds.Workloads = map[string]modelfleet.DesiredWorkload{"Line_1": exampleWorkload(t)}
	_, err = gitops.Render(workloadCfg, site("plant-a"), ds)
	if modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "modelfleet-workload-Line_1") {
		t.Fatalf("a name Kubernetes refuses: %v", err)
	}
}

// The workload's files leave the overlay in the commit whose desired state
// no longer names it.
func TestWorkloadRemovedFromTheOverlay(t *testing.T) {
	url := remote(t)
	d := newDriver(t, url, func(c *gitops.Config) { c.MQTTURL = workloadCfg.MQTTURL })
	ctx := context.Background()
	s := site("plant-a")
	if _, err := d.Apply(ctx, s, withWorkload(t, desired(s.ID, 1, v("1", 'a', 100)))); err != nil {
		t.Fatal(err)
	}
	file(t, history(t, url)[0], "clusters/plant-a/workload-bearing-failure-line.yaml")
	if _, err := d.Apply(ctx, s, desired(s.ID, 2, v("1", 'a', 100))); err != nil {
		t.Fatal(err)
	}
	head := history(t, url)[0]
	for _, p := range []string{"clusters/plant-a/workload-bearing-failure-line.yaml", "clusters/plant-a/workload-bearing-failure-line-manifest.yaml"} {
		if _, err := head.File(p); err == nil {
			t.Fatalf("%s is still in the overlay", p)
		}
	}
	if k := file(t, head, "clusters/plant-a/kustomization.yaml"); strings.Contains(k, "workload") {
		t.Fatalf("kustomization still lists the workload:\n%s", k)
	}
}

// A workload whose code is an OCI image runs that image, pinned by digest,
// with the configuration in its environment; the rest of the Deployment
// is the same.
func TestRendersAWorkloadImage(t *testing.T) {
	dw := exampleWorkload(t)
	img := "registry.plant.example/line-features@sha256:" + strings.Repeat("ab", 32)
	dw.Manifest += "image: " + img + "\n"
	sum := sha256.Sum256([]byte(dw.Manifest))
	dw.Digest = "sha256:" + hex.EncodeToString(sum[:])
	ds := desired("plant-a", 4, v("1", 'a', 100))
	ds.Workloads = map[string]modelfleet.DesiredWorkload{"bearing-failure-line": dw}
	files, err := gitops.Render(workloadCfg, site("plant-a"), ds)
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	strict(t, string(files[gitops.ClusterDir("plant-a")+"/workload-bearing-failure-line.yaml"]), &dep)
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != img || len(c.Args) != 0 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || c.ReadinessProbe == nil {
		t.Fatalf("container %q args %q", c.Image, c.Args)
	}
	found := false
	for _, e := range c.Env {
		found = found || e.Name == "MODELFLEET_ROUTER_KEY_FILE"
	}
	if !found || dep.Spec.Template.Annotations["modelfleet.io/workload-digest"] != dw.Digest {
		t.Fatalf("env %+v, annotations %+v", c.Env, dep.Spec.Template.Annotations)
	}
	// A manifest that does not parse is refused at Plan, naming why.
	dw.Manifest = strings.Replace(dw.Manifest, img, "registry.plant.example/line-features:latest", 1)
	ds.Workloads["bearing-failure-line"] = dw
	if _, err := gitops.Render(workloadCfg, site("plant-a"), ds); modelfleet.ErrorCode(err) != modelfleet.EINVALID || !strings.Contains(err.Error(), "pinned by digest") {
		t.Fatalf("an image by tag: %v", err)
	}
}
