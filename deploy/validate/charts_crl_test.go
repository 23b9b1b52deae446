package validate

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestCloudChartSiteCRL: the site CA's CRLs come from a Secret or a
// ConfigMap mounted as a directory (no subPath, so the kubelet's updates
// reach the gateway, which re-reads the file), read-only, named by
// --site-crl-file; both at once is refused at rendering.
func TestCloudChartSiteCRL(t *testing.T) {
	const chart = "modelfleet-cloud"
	gateway := func(values map[string]any) *appsv1.Deployment {
		t.Helper()
		for _, o := range mustRender(t, chart, values)["Deployment"] {
			if d := o.(*appsv1.Deployment); d.Name == "mf-modelfleet-cloud-gateway" {
				return d
			}
		}
		t.Fatal("no gateway Deployment")
		return nil
	}
	if f, ok := flag(gateway(cloudValues(nil)).Spec.Template.Spec.Containers[0].Args, "site-crl-file"); ok {
		t.Errorf("no CRL configured, yet --site-crl-file=%s", f)
	}
	for _, source := range []string{"secretName", "configMapName"} {
		values := cloudValues(map[string]any{"auth": map[string]any{
			"siteCA":  map[string]any{"secretName": "site-ca"},
			"siteCRL": map[string]any{source: "plant-pki-crl", "key": "plant.crl", "pollInterval": "10s"},
		}})
		lintChart(t, chart, values)
		d := gateway(values)
		ps := d.Spec.Template.Spec
		c := ps.Containers[0]
		file, ok := flag(c.Args, "site-crl-file")
		if !ok {
			t.Fatalf("%s: args %q lack --site-crl-file", source, c.Args)
		}
		if p, _ := flag(c.Args, "site-crl-poll"); p != "10s" {
			t.Errorf("%s: --site-crl-poll=%q", source, p)
		}
		v, m := volumeFor(ps, c, file)
		switch {
		case v == nil:
			t.Fatalf("%s: --site-crl-file=%s is on no volume", source, file)
		case source == "secretName" && (v.Secret == nil || v.Secret.SecretName != "plant-pki-crl" || len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "plant.crl"):
			t.Errorf("not from the Secret: %+v", v)
		case source == "configMapName" && (v.ConfigMap == nil || v.ConfigMap.Name != "plant-pki-crl" || len(v.ConfigMap.Items) != 1 || v.ConfigMap.Items[0].Key != "plant.crl"):
			t.Errorf("not from the ConfigMap: %+v", v)
		case m.SubPath != "":
			t.Errorf("mounted with subPath %q: the kubelet would never update it", m.SubPath)
		case !m.ReadOnly:
			t.Error("the CRL mount is writable")
		case m.MountPath+"/plant.crl" != file:
			t.Errorf("the file %s is not the mounted key (at %s)", file, m.MountPath)
		}
	}
	_, err := render(t, chart, cloudValues(map[string]any{"auth": map[string]any{"siteCRL": map[string]any{"secretName": "a", "configMapName": "b"}}}))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("a Secret and a ConfigMap: %v", err)
	}
}
