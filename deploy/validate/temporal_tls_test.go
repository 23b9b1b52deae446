package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestChartsTemporalSecurity renders both charts' ways of reaching Temporal
// securely — mTLS with a private CA, mTLS with the system roots, an API key
// alone — and checks the environment each process gets, and that every
// MODELFLEET_TEMPORAL_* variable the charts set is one the binary reads
// (cmd/modelfleet), so a renamed flag cannot leave the charts behind.
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
	read := readByBinary(t)
	for _, chart := range []string{"modelfleet-cloud", "modelfleet-edge"} {
		for _, c := range cases {
			t.Run(chart+"/"+c.name, func(t *testing.T) {
				values := map[string]any{"temporal": c.temporal}
				if chart == "modelfleet-edge" {
					values["site"] = map[string]any{"id": "plant-a"}
				}
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
}

// readByBinary is the set of MODELFLEET_TEMPORAL_* names the modelfleet
// command's source reads.
func readByBinary(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "cmd", "modelfleet", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the modelfleet command's source: %v", err)
	}
	re := regexp.MustCompile(`"(MODELFLEET_TEMPORAL_[A-Z_]+)"`)
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
