package validate

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestEdgeChartEnrollment: a site enrols with a one-time join token that
// reaches the agent only as a file from a Secret — never an argument or an
// environment value — keeps its identity on a persistent volume, and talks
// to the gateway over https://.
func TestEdgeChartEnrollment(t *testing.T) {
	const chart = "modelfleet-edge"
	const token = "mfjoin.plant-a-line-3.s3cr3t-one-time-token"
	site := map[string]any{"site": map[string]any{"id": "plant-a-line-3"}, "gatewayURL": "https://modelfleet.example.com"}
	for name, c := range map[string]struct {
		values     map[string]any
		secret     string // the Secret the token file comes from
		key        string
		chartOwned bool // the chart renders that Secret
		pvcs       int
	}{
		"existing Secret": {map[string]any{"enrollment": map[string]any{"joinTokenSecret": map[string]any{"name": "plant-a-join", "key": "join-token"}}}, "plant-a-join", "join-token", false, 1},
		"token value":     {map[string]any{"enrollment": map[string]any{"joinToken": token}}, "mf-modelfleet-edge-join-token", "token", true, 1},
		"no persistence":  {map[string]any{"enrollment": map[string]any{"joinToken": token}, "persistence": map[string]any{"enabled": false}}, "mf-modelfleet-edge-join-token", "token", true, 1},
	} {
		t.Run(name, func(t *testing.T) {
			values := merge(site, c.values)
			lintChart(t, chart, values)
			objs := mustRender(t, chart, values)
			d := objs["Deployment"][0].(*appsv1.Deployment)
			hardened(t, d)
			noTemporal(t, d)
			ps := d.Spec.Template.Spec
			ctr := ps.Containers[0]
			e := env(ctr)
			if _, ok := e["MODELFLEET_JOIN_TOKEN"]; ok {
				t.Error("the join token as an environment value")
			}
			for _, a := range ctr.Args {
				if strings.Contains(a, "join") || strings.Contains(a, token) {
					t.Errorf("arg %q: the join token reaches the agent only through a Secret", a)
				}
			}
			// The token appears nowhere in the Deployment; only in a Secret.
			b, _ := json.Marshal(d)
			if strings.Contains(string(b), token) {
				t.Error("the join token is in the Deployment")
			}
			v, _ := volumeFor(ps, ctr, e["MODELFLEET_JOIN_TOKEN_FILE"])
			if v == nil || v.Secret == nil || v.Secret.SecretName != c.secret || len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != c.key ||
				path.Join("/", v.Secret.Items[0].Path) != "/"+path.Base(e["MODELFLEET_JOIN_TOKEN_FILE"]) {
				t.Errorf("MODELFLEET_JOIN_TOKEN_FILE=%q is not the Secret %s's %s: %+v", e["MODELFLEET_JOIN_TOKEN_FILE"], c.secret, c.key, v)
			}
			var secrets []string
			for _, o := range objs["Secret"] {
				s := o.(*corev1.Secret)
				secrets = append(secrets, s.Name)
				if s.StringData["token"] != token {
					t.Errorf("Secret %s: %v", s.Name, s.StringData)
				}
			}
			if want := map[bool][]string{true: {c.secret}, false: nil}[c.chartOwned]; !slices.Equal(secrets, want) {
				t.Errorf("Secrets %v, want %v", secrets, want)
			}
			// The identity (<data dir>/identity) outlives the pod.
			dataDir, _ := flag(ctr.Args, "data-dir")
			if v, _ := volumeFor(ps, ctr, path.Join(dataDir, "identity", "site.key")); v == nil || v.PersistentVolumeClaim == nil {
				t.Errorf("the site's identity under %s is not on a persistent volume: %+v", dataDir, v)
			}
			if len(objs["PersistentVolumeClaim"]) != c.pvcs {
				t.Errorf("%d PVCs, want %d", len(objs["PersistentVolumeClaim"]), c.pvcs)
			}
			if !strings.HasPrefix(e["MODELFLEET_GATEWAY_URL"], "https://") {
				t.Errorf("gateway URL %q", e["MODELFLEET_GATEWAY_URL"])
			}
			envReadByBinary(t, objs)
		})
	}

	// A site that has enrolled needs no token: no Secret, no token file.
	objs := mustRender(t, chart, site)
	if e := env(objs["Deployment"][0].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]); e["MODELFLEET_JOIN_TOKEN_FILE"] != "" || len(objs["Secret"]) != 0 {
		t.Errorf("without a token: env %v, %d Secrets", e, len(objs["Secret"]))
	}
	for name, c := range map[string]struct {
		values map[string]any
		err    string
	}{
		"plain HTTP gateway": {map[string]any{"gatewayURL": "http://modelfleet.example.com"}, "gateway is https://"},
		"both token sources": {map[string]any{"enrollment": map[string]any{"joinToken": token, "joinTokenSecret": map[string]any{"name": "x"}}}, "not both"},
	} {
		if _, err := render(t, chart, merge(site, c.values)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.err)
		}
	}
	// A gateway without auth, said so: no identity, no token.
	objs = mustRender(t, chart, merge(site, map[string]any{"gatewayURL": "http://gw:8080", "insecurePlainHTTP": true, "enrollment": map[string]any{"joinToken": token}, "persistence": map[string]any{"enabled": false}}))
	if e := env(objs["Deployment"][0].(*appsv1.Deployment).Spec.Template.Spec.Containers[0]); e["MODELFLEET_JOIN_TOKEN_FILE"] != "" || len(objs["Secret"])+len(objs["PersistentVolumeClaim"]) != 0 {
		t.Errorf("plain HTTP: env %v, %d Secrets, %d PVCs", e, len(objs["Secret"]), len(objs["PersistentVolumeClaim"]))
	}
}
