package validate

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestEdgeChartExternalWorkloads: by default the agent hosts the site's
// workloads; with workloads.external it reads each workload's health
// endpoint instead, and its NetworkPolicy lets it reach them.
func TestEdgeChartExternalWorkloads(t *testing.T) {
	const chart = "modelfleet-edge"
	base := map[string]any{"site": map[string]any{"id": "plant-a-line-3"}, "gatewayURL": "https://modelfleet.example.com"}
	objs := mustRender(t, chart, base)
	ctr := objs["Deployment"][0].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	if slices.Contains(ctr.Args, "--external-workloads") {
		t.Errorf("external workloads by default: %q", ctr.Args)
	}
	values := merge(base, map[string]any{"workloads": map[string]any{"external": true, "grace": "10m"}})
	lintChart(t, chart, values)
	objs = mustRender(t, chart, values)
	d := objs["Deployment"][0].(*appsv1.Deployment)
	hardened(t, d)
	ctr = d.Spec.Template.Spec.Containers[0]
	health, ok := flag(ctr.Args, "external-workload-health")
	grace, _ := flag(ctr.Args, "external-workload-grace")
	if !slices.Contains(ctr.Args, "--external-workloads") || !ok || health != "http://modelfleet-workload-{name}:9100/healthz" || grace != "10m" {
		t.Fatalf("args %q", ctr.Args)
	}
	np := objs["NetworkPolicy"][0].(*networkingv1.NetworkPolicy)
	found := false
	for _, e := range np.Spec.Egress {
		for _, to := range e.To {
			if to.PodSelector != nil && to.PodSelector.MatchLabels["app.kubernetes.io/name"] == "modelfleet-workload" && len(e.Ports) == 1 && e.Ports[0].Port.IntValue() == 9100 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("the NetworkPolicy does not let the agent reach the workloads' health port: %+v", np.Spec.Egress)
	}
}
