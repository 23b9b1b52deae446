package validate

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestEdgeChartAPIKeys: router API keys come from a Secret mounted as a
// file — without subPath, so the kubelet's updates reach the agent, which
// re-reads it — and never as an argument or an environment value.
func TestEdgeChartAPIKeys(t *testing.T) {
	const chart = "modelfleet-edge"
	base := map[string]any{"site": map[string]any{"id": "plant-a-line-3"}, "gatewayURL": "https://modelfleet.example.com"}

	objs := mustRender(t, chart, base)
	ctr := objs["Deployment"][0].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	if f, ok := flag(ctr.Args, "api-keys-file"); ok {
		t.Errorf("no Secret, yet --api-keys-file=%s", f)
	}

	values := merge(base, map[string]any{"apiKeys": map[string]any{"secret": map[string]any{"name": "plant-a-api-keys", "key": "keys.yaml"}}})
	lintChart(t, chart, values)
	objs = mustRender(t, chart, values)
	d := objs["Deployment"][0].(*appsv1.Deployment)
	hardened(t, d)
	ps := d.Spec.Template.Spec
	ctr = ps.Containers[0]
	file, ok := flag(ctr.Args, "api-keys-file")
	if !ok {
		t.Fatalf("args %q lack --api-keys-file", ctr.Args)
	}
	v, m := volumeFor(ps, ctr, file)
	switch {
	case v == nil || v.Secret == nil || v.Secret.SecretName != "plant-a-api-keys":
		t.Fatalf("--api-keys-file=%s is not from the Secret: %+v", file, v)
	case m.SubPath != "":
		t.Errorf("mounted with subPath %q: the kubelet would never update it", m.SubPath)
	case !m.ReadOnly:
		t.Error("the keys mount is writable")
	case len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "keys.yaml" || m.MountPath+"/"+v.Secret.Items[0].Path != file:
		t.Errorf("the file %s is not the Secret's keys.yaml: %+v at %s", file, v.Secret.Items, m.MountPath)
	}
	if len(objs["Secret"]) != 0 {
		t.Error("the chart renders a Secret of keys: they would sit in Helm's release history")
	}
}
