package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestChartsTemporalSecurity renders the cloud chart's ways of reaching
// Temporal securely — mTLS with a private CA, mTLS with the system roots, an
// API key alone — and checks the environment each process gets, and that
// every MODELFLEET_TEMPORAL_* variable the chart sets is one the binary reads
// (cmd/modelfleet), so a renamed flag cannot leave the chart behind. The edge
// chart, given the same values (left over from before sites stopped dialing
// Temporal), gives its agent no Temporal setting, Secret or credential.
func TestChartsTemporalSecurity(t *testing.T) {
	const dir = "/etc/modelfleet/temporal-tls/"
	cases := []struct {
		name     string
		temporal map[string]any
		want     map[string]string // "" value: must be absent
		apiKey   string            // the Secret the API key comes from
	}{
		{"mTLS, private CA", map[string]any{"tls": map[string]any{"enabled": true, "secretName": "temporal-mtls", "serverName": "temporal.internal"}},
			map[string]string{"MODELFLEET_TEMPORAL_TLS": "true", "MODELFLEET_TEMPORAL_TLS_CA": dir + "ca.crt", "MODELFLEET_TEMPORAL_TLS_CERT": dir + "tls.crt", "MODELFLEET_TEMPORAL_TLS_KEY": dir + "tls.key", "MODELFLEET_TEMPORAL_TLS_SERVER_NAME": "temporal.internal"}, ""},
		{"mTLS, system roots", map[string]any{"tls": map[string]any{"enabled": true, "secretName": "temporal-mtls", "caFromSecret": false}},
			map[string]string{"MODELFLEET_TEMPORAL_TLS": "true", "MODELFLEET_TEMPORAL_TLS_CA": "", "MODELFLEET_TEMPORAL_TLS_CERT": dir + "tls.crt"}, ""},
		{"API key", map[string]any{"apiKeySecret": map[string]any{"name": "temporal-cloud"}},
			map[string]string{"MODELFLEET_TEMPORAL_TLS": "", "MODELFLEET_TEMPORAL_TLS_CERT": ""}, "temporal-cloud/api-key"},
	}
	read := readByBinary(t, "MODELFLEET_TEMPORAL_")
	for _, c := range cases {
		t.Run("modelfleet-edge/"+c.name, func(t *testing.T) {
			values := map[string]any{"temporal": c.temporal, "site": map[string]any{"id": "plant-a"}}
			objs, err := render(t, "modelfleet-edge", values)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range deployments(objs) {
				noTemporal(t, d)
			}
		})
	}
	const chart = "modelfleet-cloud"
	for _, c := range cases {
		t.Run(chart+"/"+c.name, func(t *testing.T) {
			values := cloudValues(map[string]any{"temporal": c.temporal})
			lintChart(t, chart, values)
			objs, err := render(t, chart, values)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range deployments(objs) {
				ctr := d.Spec.Template.Spec.Containers[0]
				got := map[string]corev1.EnvVar{}
				for _, e := range ctr.Env {
					got[e.Name] = e
					if strings.HasPrefix(e.Name, "MODELFLEET_TEMPORAL_") && !read[e.Name] {
						t.Errorf("%s sets %s, which the binary does not read", d.Name, e.Name)
					}
				}
				for k, v := range c.want {
					if e, ok := got[k]; v == "" && ok || v != "" && e.Value != v {
						t.Errorf("%s: %s = %q, want %q", d.Name, k, e.Value, v)
					}
				}
				e, ok := got["MODELFLEET_TEMPORAL_API_KEY"]
				switch {
				case c.apiKey == "" && ok:
					t.Errorf("%s: an API key without apiKeySecret", d.Name)
				case c.apiKey != "" && (!ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
					e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key != c.apiKey):
					t.Errorf("%s: API key env %+v, want it from the Secret %s", d.Name, e, c.apiKey)
				}
			}
		})
	}
}

// noTemporal checks that a site's agent is given nothing of Temporal: no
// MODELFLEET_TEMPORAL_* or MODELFLEET_NAMESPACE variable, no Temporal
// Secret mounted.
func noTemporal(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	for _, c := range ps.Containers {
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "MODELFLEET_TEMPORAL_") || e.Name == "MODELFLEET_NAMESPACE" {
				t.Errorf("%s/%s: env %s: a site holds no Temporal setting or credential", d.Name, c.Name, e.Name)
			}
		}
	}
	for _, v := range ps.Volumes {
		if strings.Contains(v.Name, "temporal") || v.Secret != nil && strings.Contains(v.Secret.SecretName, "temporal") {
			t.Errorf("%s: volume %s: a site holds no Temporal credential", d.Name, v.Name)
		}
	}
}

// TestCloudChartAMLArc: the amlarc driver's workspace reaches the worker
// (not the gateway) as the variables the binary reads, and a workspace
// without its subscription, group, region or environment does not render.
func TestCloudChartAMLArc(t *testing.T) {
	read := readByBinary(t, "MODELFLEET_AMLARC_")
	aml := map[string]any{"workspace": "mlw-factory", "subscriptionID": "11111111-1111-1111-1111-111111111111", "resourceGroup": "rg-factory", "location": "westeurope", "environment": "azureml:modelfleet-lightgbm:1"}
	values := cloudValues(map[string]any{"amlarc": aml, "azure": map[string]any{"workloadIdentityClientID": "22222222-2222-2222-2222-222222222222"}})
	lintChart(t, "modelfleet-cloud", values)
	objs, err := render(t, "modelfleet-cloud", values)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range deployments(objs) {
		e := env(d.Spec.Template.Spec.Containers[0])
		worker := strings.HasSuffix(name, "-worker")
		if got := e["MODELFLEET_AMLARC_WORKSPACE"] == "mlw-factory"; got != worker {
			t.Errorf("%s: amlarc workspace set %v, want %v", name, got, worker)
		}
		if worker && (e["MODELFLEET_AMLARC_LOCATION"] != "westeurope" || e["MODELFLEET_AMLARC_INSTANCE_TYPE"] != "defaultinstancetype" || d.Spec.Template.Labels["azure.workload.identity/use"] != "true") {
			t.Errorf("%s: env %v labels %v", name, e, d.Spec.Template.Labels)
		}
		for k := range e {
			if strings.HasPrefix(k, "MODELFLEET_AMLARC_") && !read[k] {
				t.Errorf("%s sets %s, which the binary does not read", name, k)
			}
		}
	}
	aml["location"] = ""
	if _, err := render(t, "modelfleet-cloud", values); err == nil || !strings.Contains(err.Error(), "amlarc.location is required") {
		t.Errorf("a workspace without a region: %v", err)
	}
}

// readByBinary is the set of environment variables with prefix that the
// modelfleet command's source reads.
func readByBinary(t *testing.T, prefix string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "cmd", "modelfleet", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the modelfleet command's source: %v", err)
	}
	re := regexp.MustCompile(`"(` + regexp.QuoteMeta(prefix) + `[A-Z_]+)"`)
	out := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
	}
	var names []string
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("the binary reads %s", strings.Join(names, ", "))
	return out
}
