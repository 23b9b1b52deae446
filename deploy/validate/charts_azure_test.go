package validate

import (
	"strings"
	"testing"
)

// TestCloudChartAzureTrust: the Service Bus namespace and the release keys
// in Key Vault reach the gateway and the worker as the variables the binary
// reads, and a gitops signing key reaches the worker as a read-only file
// from its Secret, never as a value.
func TestCloudChartAzureTrust(t *testing.T) {
	const chart = "modelfleet-cloud"
	vault := []any{"https://plant.vault.azure.net/keys/release-2026", "https://plant.vault.azure.net/keys/release-2025"}
	values := cloudValues(map[string]any{
		"serviceBus":  map[string]any{"namespace": "plant.servicebus.windows.net"},
		"releaseKeys": map[string]any{"keyVault": vault},
		"gitops":      map[string]any{"signingKeySecret": map[string]any{"name": "fleet-signing", "key": "key.asc"}},
	})
	lintChart(t, chart, values)
	objs, err := render(t, chart, values)
	if err != nil {
		t.Fatal(err)
	}
	read := readByBinary(t, "MODELFLEET_")
	for _, name := range []string{"MODELFLEET_SERVICEBUS_NAMESPACE", "MODELFLEET_RELEASE_KEY_VAULT"} {
		if !read[name] {
			t.Errorf("the chart sets %s, which the binary does not read", name)
		}
	}
	workers := 0
	for name, d := range deployments(objs) {
		ctr := d.Spec.Template.Spec.Containers[0]
		e := env(ctr)
		if e["MODELFLEET_SERVICEBUS_NAMESPACE"] != "plant.servicebus.windows.net" || e["MODELFLEET_RELEASE_KEY_VAULT"] != vault[0].(string)+","+vault[1].(string) {
			t.Errorf("%s: env %v", name, e)
		}
		file, ok := flag(ctr.Args, "gitops-signing-key")
		if !strings.HasSuffix(name, "-worker") {
			if ok {
				t.Errorf("%s gets the gitops signing key", name)
			}
			continue
		}
		workers++
		v, m := volumeFor(d.Spec.Template.Spec, ctr, file)
		switch {
		case !ok:
			t.Fatalf("%s: args %q lack --gitops-signing-key", name, ctr.Args)
		case v == nil || v.Secret == nil || v.Secret.SecretName != "fleet-signing" || !m.ReadOnly:
			t.Fatalf("%s: --gitops-signing-key=%s is not a read-only file from the Secret: %+v", name, file, v)
		case len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "key.asc" || *v.Secret.DefaultMode != 0o400:
			t.Errorf("%s: the key file: %+v", name, v.Secret)
		}
	}
	if workers != 1 {
		t.Errorf("%d worker Deployments", workers)
	}
}
