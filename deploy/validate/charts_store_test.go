package validate

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// With a PostgreSQL store the gateway runs three replicas by default,
// behind a PodDisruptionBudget, its DSN read from a Secret, ready while the
// database answers; without one, more than one replica is refused.
func TestCloudChartGatewayReplicasOnPostgres(t *testing.T) {
	vals := cloudValues(map[string]any{"gateway": map[string]any{"store": map[string]any{"secretName": "fleet-db"}}})
	lintChart(t, "modelfleet-cloud", vals)
	objs, err := render(t, "modelfleet-cloud", vals)
	if err != nil {
		t.Fatal(err)
	}
	gw := deployments(objs)["mf-modelfleet-cloud-gateway"]
	if gw == nil || *gw.Spec.Replicas != 3 || gw.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Fatalf("gateway = %+v; want 3 replicas rolling", gw)
	}
	hardened(t, gw)
	c := gw.Spec.Template.Spec.Containers[0]
	file := env(c)["MODELFLEET_STORE_FILE"]
	v, _ := volumeFor(gw.Spec.Template.Spec, c, file)
	if file != "/etc/modelfleet/store/dsn" || v == nil || v.Secret == nil || v.Secret.SecretName != "fleet-db" {
		t.Errorf("store file %q from volume %+v; want the Secret fleet-db", file, v)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if len(objs["PodDisruptionBudget"]) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want one", len(objs["PodDisruptionBudget"]))
	}
	pdb := objs["PodDisruptionBudget"][0].(*policyv1.PodDisruptionBudget)
	if pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "modelfleet-gateway" {
		t.Errorf("pdb = %+v", pdb.Spec)
	}
	pvc := objs["PersistentVolumeClaim"][0].(*corev1.PersistentVolumeClaim)
	if pvc.Spec.AccessModes[0] != corev1.ReadWriteMany {
		t.Errorf("replicas share the volume: access modes %v", pvc.Spec.AccessModes)
	}

	five := cloudValues(map[string]any{"gateway": map[string]any{"replicas": 5, "store": map[string]any{"secretName": "fleet-db"}}})
	if objs, err := render(t, "modelfleet-cloud", five); err != nil || *deployments(objs)["mf-modelfleet-cloud-gateway"].Spec.Replicas != 5 {
		t.Errorf("replicas 5: %v", err)
	}
	if _, err := render(t, "modelfleet-cloud", cloudValues(map[string]any{"gateway": map[string]any{"replicas": 2}})); err == nil || !strings.Contains(err.Error(), "gateway.store.secretName") {
		t.Errorf("two replicas on bbolt: %v, want refused", err)
	}
	if objs, err := render(t, "modelfleet-cloud", cloudValues(nil)); err != nil || len(objs["PodDisruptionBudget"]) != 0 {
		t.Errorf("bbolt default: %v, %d PDBs", err, len(objs["PodDisruptionBudget"]))
	}
}
