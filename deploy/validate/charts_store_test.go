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

// With Entra authentication the gateway gets $MODELFLEET_STORE_ENTRA and
// its workload identity; the DSN, which then holds no password, may come in
// the clear. A password in it, or Entra without an identity, is refused.
func TestCloudChartGatewayStoreEntra(t *testing.T) {
	const dsn = "postgres://modelfleet-gateway@fleet.postgres.database.azure.com:5432/modelfleet?sslmode=require"
	store := func(s map[string]any, identity string) map[string]any {
		return cloudValues(map[string]any{"gateway": map[string]any{"store": s}, "azure": map[string]any{"workloadIdentityClientID": identity}})
	}
	vals := store(map[string]any{"entra": true, "dsn": dsn}, "00000000-0000-0000-0000-000000000001")
	lintChart(t, "modelfleet-cloud", vals)
	objs, err := render(t, "modelfleet-cloud", vals)
	if err != nil {
		t.Fatal(err)
	}
	gw := deployments(objs)["mf-modelfleet-cloud-gateway"]
	if gw == nil || *gw.Spec.Replicas != 3 {
		t.Fatalf("gateway = %+v; want 3 replicas", gw)
	}
	c := gw.Spec.Template.Spec.Containers[0]
	e := env(c)
	if e["MODELFLEET_STORE"] != dsn || e["MODELFLEET_STORE_ENTRA"] != "true" || e["MODELFLEET_STORE_FILE"] != "" {
		t.Errorf("store env %q %q %q", e["MODELFLEET_STORE"], e["MODELFLEET_STORE_ENTRA"], e["MODELFLEET_STORE_FILE"])
	}
	if gw.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
		t.Errorf("no workload identity on the gateway: labels %v", gw.Spec.Template.Labels)
	}
	for _, v := range gw.Spec.Template.Spec.Volumes {
		if v.Name == "store" {
			t.Errorf("a store Secret volume without a Secret: %+v", v)
		}
	}
	// The DSN may stay in a Secret.
	objs, err = render(t, "modelfleet-cloud", store(map[string]any{"entra": true, "secretName": "fleet-db"}, "00000000-0000-0000-0000-000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	if e := env(deployments(objs)["mf-modelfleet-cloud-gateway"].Spec.Template.Spec.Containers[0]); e["MODELFLEET_STORE_FILE"] != "/etc/modelfleet/store/dsn" || e["MODELFLEET_STORE_ENTRA"] != "true" {
		t.Errorf("entra with the Secret: env %v", e)
	}
	for name, tc := range map[string]struct {
		vals map[string]any
		want string
	}{
		"no identity":       {store(map[string]any{"entra": true, "dsn": dsn}, ""), "workloadIdentityClientID"},
		"password":          {store(map[string]any{"entra": true, "dsn": "postgres://u:secret@db/fleet"}, "id"), "holds a password"},
		"dsn without entra": {store(map[string]any{"dsn": dsn}, "id"), "gateway.store.secretName"},
		"entra without db":  {store(map[string]any{"entra": true}, "id"), "gateway.store.dsn"},
		"dsn and secret":    {store(map[string]any{"entra": true, "dsn": dsn, "secretName": "s"}, "id"), "not both"},
	} {
		if _, err := render(t, "modelfleet-cloud", tc.vals); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want refused naming %q", name, err, tc.want)
		}
	}
}
