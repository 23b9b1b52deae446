package validate

import (
	"path"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The values every cloud chart test starts from: what the gateway refuses
// to start without (an OIDC issuer and audience, role bindings,
// authenticated Event Grid deliveries) and the worker's credential for it.
const (
	testIssuer   = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0"
	testAudience = "api://modelfleet-gateway"
)

func cloudValues(extra map[string]any) map[string]any {
	base := map[string]any{
		"auth": map[string]any{
			"oidcIssuer":   testIssuer,
			"oidcAudience": testAudience,
			"roleBindings": []any{
				map[string]any{"role": "admin", "groups": []any{"mf-admins"}},
				map[string]any{"role": "approver", "groups": []any{"plant-a-shift-leads"}, "scope": map[string]any{"plant": "plant-a"}},
				map[string]any{"role": "cloud-worker", "appRoles": []any{"Modelfleet.Worker"}},
			},
		},
		"gateway": map[string]any{"webhook": map[string]any{"keysSecret": map[string]any{"name": "eventgrid-keys"}}},
		"worker":  map[string]any{"gatewayToken": map[string]any{"secretName": "worker-gateway-token"}},
	}
	return merge(base, extra)
}

// merge returns dst with src laid over it, maps merged key by key (as Helm
// merges values); src's other values are used as they are.
func merge(dst, src map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = merge(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// volumeFor is the volume the file at p is read from in container c: that
// of the deepest mount p lies under.
func volumeFor(ps corev1.PodSpec, c corev1.Container, p string) (*corev1.Volume, *corev1.VolumeMount) {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	if best == nil {
		return nil, nil
	}
	for i, v := range ps.Volumes {
		if v.Name == best.Name {
			return &ps.Volumes[i], best
		}
	}
	return nil, best
}

// flag is the value of --name=value in args, and whether it is there.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func flags(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func envVar(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func mustRender(t *testing.T, chart string, values map[string]any) map[string][]any {
	t.Helper()
	objs, err := render(t, chart, values)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// probesUse checks that the container's probes reach a port it declares
// with the scheme given.
func probesUse(t *testing.T, d *appsv1.Deployment, scheme corev1.URIScheme) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	for what, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no %s HTTP probe", d.Name, what)
			continue
		}
		if p.HTTPGet.Scheme != scheme {
			t.Errorf("%s: %s probe scheme %q, want %q", d.Name, what, p.HTTPGet.Scheme, scheme)
		}
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.String() }) {
			t.Errorf("%s: %s probe port %s is none of %v", d.Name, what, p.HTTPGet.Port.String(), c.Ports)
		}
	}
}

// roleBindingsFile is auth.Bindings (the modelfleet module's auth/bindings.go),
// decoded strictly: a chart writing a field the gateway does not know fails.
type roleBindingsFile struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Bindings   []struct {
		Role     string            `json:"role"`
		Subjects []string          `json:"subjects,omitempty"`
		Groups   []string          `json:"groups,omitempty"`
		AppRoles []string          `json:"appRoles,omitempty"`
		Scope    map[string]string `json:"scope,omitempty"`
	} `json:"bindings"`
}

// TestCloudChartAuth: the gateway authenticates every caller. Rendering
// without an OIDC issuer fails and says why; the gateway gets its issuer,
// audience and the role bindings file from a ConfigMap it mounts, keeps its
// PKI on its volume, serves HTTPS (probes included) under the Service's
// names; the worker gets its token file and the gateway's CA.
func TestCloudChartAuth(t *testing.T) {
	const chart = "modelfleet-cloud"
	for name, values := range map[string]map[string]any{
		"defaults":    nil,
		"no issuer":   merge(cloudValues(nil), map[string]any{"auth": map[string]any{"oidcIssuer": ""}}),
		"no audience": merge(cloudValues(nil), map[string]any{"auth": map[string]any{"oidcAudience": ""}}),
	} {
		if _, err := render(t, chart, values); err == nil || !strings.Contains(err.Error(), "auth.oidcIssuer and auth.oidcAudience are required") {
			t.Errorf("%s: rendered, or failed without saying why: %v", name, err)
		}
	}

	values := cloudValues(map[string]any{
		"auth":   map[string]any{"oidcTenants": []any{"00000000-0000-0000-0000-000000000001"}, "tlsHosts": []any{"modelfleet.plant.example.com"}},
		"worker": map[string]any{"gatewayCA": map[string]any{"configMapName": "modelfleet-gateway-ca"}},
	})
	lintChart(t, chart, values)
	objs := mustRender(t, chart, values)
	ds := deployments(objs)
	gw, wk := ds["mf-modelfleet-cloud-gateway"], ds["mf-modelfleet-cloud-worker"]
	gc := gw.Spec.Template.Spec.Containers[0]
	for f, want := range map[string]string{"oidc-issuer": testIssuer, "oidc-audience": testAudience, "oidc-tenant": "00000000-0000-0000-0000-000000000001", "oidc-groups-claim": "groups", "oidc-roles-claim": "roles"} {
		if v, _ := flag(gc.Args, f); v != want {
			t.Errorf("gateway --%s=%q, want %q (args %v)", f, v, want, gc.Args)
		}
	}
	if slices.Contains(gc.Args, "--insecure-no-auth") || slices.Contains(gc.Args, "--insecure-webhook") {
		t.Errorf("gateway args %v: insecure by default", gc.Args)
	}

	// The role bindings: a ConfigMap of the values, mounted where
	// --role-bindings points, and the gateway rolled when it changes.
	rb, ok := flag(gc.Args, "role-bindings")
	if !ok {
		t.Fatalf("gateway args %v lack --role-bindings", gc.Args)
	}
	v, m := volumeFor(gw.Spec.Template.Spec, gc, rb)
	if v == nil || v.ConfigMap == nil || !m.ReadOnly {
		t.Fatalf("--role-bindings=%s is not read from a ConfigMap volume: %+v %+v", rb, v, m)
	}
	var cm *corev1.ConfigMap
	for _, o := range objs["ConfigMap"] {
		if c := o.(*corev1.ConfigMap); c.Name == v.ConfigMap.Name {
			cm = c
		}
	}
	if cm == nil {
		t.Fatalf("the gateway mounts ConfigMap %s, which the chart does not render", v.ConfigMap.Name)
	}
	doc, ok := cm.Data[strings.TrimPrefix(rb, m.MountPath+"/")]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s: %v", cm.Name, path.Base(rb), cm.Data)
	}
	var bf roleBindingsFile
	if err := yaml.UnmarshalStrict([]byte(doc), &bf); err != nil {
		t.Fatalf("role bindings file: %v\n%s", err, doc)
	}
	if bf.APIVersion != "modelfleet.dev/v1" || bf.Kind != "RoleBindings" || len(bf.Bindings) != 3 ||
		bf.Bindings[0].Role != "admin" || bf.Bindings[1].Scope["plant"] != "plant-a" || bf.Bindings[2].AppRoles[0] != "Modelfleet.Worker" {
		t.Errorf("role bindings file %+v", bf)
	}
	if gw.Spec.Template.Annotations["checksum/role-bindings"] == "" {
		t.Error("the gateway's pod template does not change with its role bindings")
	}
	changed := merge(values, map[string]any{"auth": map[string]any{"roleBindings": []any{map[string]any{"role": "viewer", "subjects": []any{"ana@example.com"}}}}})
	if got := deployments(mustRender(t, chart, changed))[gw.Name].Spec.Template.Annotations["checksum/role-bindings"]; got == gw.Spec.Template.Annotations["checksum/role-bindings"] {
		t.Error("a change of role bindings does not roll the gateway")
	}

	// The site CA, control-signing keys and enrolments survive restarts.
	pki, _ := flag(gc.Args, "pki-dir")
	if v, _ := volumeFor(gw.Spec.Template.Spec, gc, pki+"/ca.crt"); pki == "" || v == nil || v.PersistentVolumeClaim == nil {
		t.Errorf("--pki-dir=%q is not on the gateway's persistent volume (%+v)", pki, v)
	}
	// HTTPS, under the names the worker and the sites use.
	probesUse(t, gw, corev1.URISchemeHTTPS)
	hosts := flags(gc.Args, "tls-host")
	for _, h := range []string{"mf-modelfleet-cloud-gateway", "mf-modelfleet-cloud-gateway.modelfleet", "mf-modelfleet-cloud-gateway.modelfleet.svc", "mf-modelfleet-cloud-gateway.modelfleet.svc.cluster.local", "modelfleet.plant.example.com"} {
		if !slices.Contains(hosts, h) {
			t.Errorf("--tls-host %v lacks %s", hosts, h)
		}
	}
	url := env(gc)["MODELFLEET_GATEWAY_URL"]
	if !strings.HasPrefix(url, "https://") || !slices.ContainsFunc(hosts, func(h string) bool { return strings.HasPrefix(url, "https://"+h+":") }) {
		t.Errorf("gateway URL %s is not https:// on a name its certificate carries (%v)", url, hosts)
	}
	for _, o := range objs["Service"] {
		if svc := o.(*corev1.Service); svc.Name == gw.Name && (svc.Spec.Ports[0].TargetPort.String() != gc.Ports[0].Name || svc.Spec.Ports[0].AppProtocol == nil || *svc.Spec.Ports[0].AppProtocol != "https") {
			t.Errorf("gateway service ports %+v", svc.Spec.Ports)
		}
	}
	// Event Grid deliveries authenticate: keys from a Secret, never a value.
	if e, _ := envVar(gc, "MODELFLEET_EVENT_KEYS"); e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "eventgrid-keys" {
		t.Errorf("MODELFLEET_EVENT_KEYS %+v, want it from the Secret eventgrid-keys", e)
	}

	// The worker: its token file from the Secret, the gateway's CA from
	// the ConfigMap, the gateway at https://.
	wc := wk.Spec.Template.Spec.Containers[0]
	we := env(wc)
	if we["MODELFLEET_GATEWAY_URL"] != url {
		t.Errorf("worker gateway URL %q, want %q", we["MODELFLEET_GATEWAY_URL"], url)
	}
	if v, _ := volumeFor(wk.Spec.Template.Spec, wc, we["MODELFLEET_TOKEN_FILE"]); v == nil || v.Secret == nil || v.Secret.SecretName != "worker-gateway-token" {
		t.Errorf("worker MODELFLEET_TOKEN_FILE=%q is not read from the Secret worker-gateway-token: %+v", we["MODELFLEET_TOKEN_FILE"], v)
	}
	if v, _ := volumeFor(wk.Spec.Template.Spec, wc, we["MODELFLEET_GATEWAY_CA"]); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != "modelfleet-gateway-ca" {
		t.Errorf("worker MODELFLEET_GATEWAY_CA=%q is not read from the ConfigMap modelfleet-gateway-ca: %+v", we["MODELFLEET_GATEWAY_CA"], v)
	}
	if _, ok := we["MODELFLEET_TOKEN"]; ok {
		t.Error("the worker's token as an environment value")
	}
	envReadByBinary(t, objs)

	// A projected service account token, and the CA from a Secret.
	objs = mustRender(t, chart, merge(values, map[string]any{"worker": map[string]any{
		"gatewayToken": map[string]any{"secretName": "", "projected": map[string]any{"audience": testAudience}},
		"gatewayCA":    map[string]any{"configMapName": "", "secretName": "gateway-ca", "key": "tls.crt"},
	}}))
	wk = deployments(objs)["mf-modelfleet-cloud-worker"]
	wc = wk.Spec.Template.Spec.Containers[0]
	v, _ = volumeFor(wk.Spec.Template.Spec, wc, env(wc)["MODELFLEET_TOKEN_FILE"])
	if v == nil || v.Projected == nil || len(v.Projected.Sources) != 1 || v.Projected.Sources[0].ServiceAccountToken == nil || v.Projected.Sources[0].ServiceAccountToken.Audience != testAudience {
		t.Errorf("projected worker token: %+v", v)
	}
	if v, _ := volumeFor(wk.Spec.Template.Spec, wc, env(wc)["MODELFLEET_GATEWAY_CA"]); v == nil || v.Secret == nil || v.Secret.SecretName != "gateway-ca" || v.Secret.Items[0].Key != "tls.crt" {
		t.Errorf("gateway CA from a Secret: %+v", v)
	}

	// Bring your own server certificate and site CA (cert-manager).
	objs = mustRender(t, chart, merge(values, map[string]any{"auth": map[string]any{"tls": map[string]any{"secretName": "gateway-tls"}, "siteCA": map[string]any{"secretName": "site-ca"}}}))
	gw = deployments(objs)["mf-modelfleet-cloud-gateway"]
	gc = gw.Spec.Template.Spec.Containers[0]
	for f, secret := range map[string]string{"tls-cert": "gateway-tls", "tls-key": "gateway-tls", "site-ca-cert": "site-ca", "site-ca-key": "site-ca"} {
		p, _ := flag(gc.Args, f)
		if v, _ := volumeFor(gw.Spec.Template.Spec, gc, p); p == "" || v == nil || v.Secret == nil || v.Secret.SecretName != secret {
			t.Errorf("--%s=%q is not read from the Secret %s: %+v", f, p, secret, v)
		}
	}

	// The start-up checks the gateway makes, made at rendering.
	for name, c := range map[string]struct {
		values map[string]any
		err    string
	}{
		"no webhook auth":      {map[string]any{"gateway": map[string]any{"webhook": map[string]any{"keysSecret": map[string]any{"name": ""}}}}, "gateway.webhook"},
		"entra without issuer": {map[string]any{"gateway": map[string]any{"webhook": map[string]any{"keysSecret": map[string]any{"name": ""}, "entra": map[string]any{"jwksURL": "https://login.microsoftonline.com/common/discovery/v2.0/keys"}}}}, "needs gateway.webhook.entra.issuers"},
		"no worker token":      {map[string]any{"worker": map[string]any{"gatewayToken": map[string]any{"secretName": ""}}}, "worker.gatewayToken"},
		"bindings not a list":  {map[string]any{"auth": map[string]any{"roleBindings": "apiVersion: modelfleet.dev/v1"}}, "auth.roleBindings must be a list"},
	} {
		if _, err := render(t, chart, merge(values, c.values)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.err)
		}
	}
	// Entra-authenticated deliveries.
	objs = mustRender(t, chart, merge(values, map[string]any{"gateway": map[string]any{"webhook": map[string]any{"keysSecret": map[string]any{"name": ""}, "entra": map[string]any{
		"jwksURL": "https://login.microsoftonline.com/common/discovery/v2.0/keys", "issuers": []any{"https://sts.windows.net/t/"}, "audiences": []any{"api://mf-events"}}}}}))
	gc = deployments(objs)["mf-modelfleet-cloud-gateway"].Spec.Template.Spec.Containers[0]
	if v, _ := flag(gc.Args, "entra-jwks-url"); v == "" || !slices.Equal(flags(gc.Args, "entra-audience"), []string{"api://mf-events"}) {
		t.Errorf("entra webhook args %v", gc.Args)
	}
	if _, ok := envVar(gc, "MODELFLEET_EVENT_KEYS"); ok {
		t.Error("event keys without keysSecret")
	}

	// Authentication off, said so: plain HTTP, no bindings, no token.
	objs = mustRender(t, chart, map[string]any{"auth": map[string]any{"insecureNoAuth": true}, "gateway": map[string]any{"webhook": map[string]any{"insecure": true}}})
	ds = deployments(objs)
	gw, wk = ds["mf-modelfleet-cloud-gateway"], ds["mf-modelfleet-cloud-worker"]
	gc = gw.Spec.Template.Spec.Containers[0]
	if !slices.Contains(gc.Args, "--insecure-no-auth") || !slices.Contains(gc.Args, "--insecure-webhook") {
		t.Errorf("insecure gateway args %v", gc.Args)
	}
	if _, ok := flag(gc.Args, "oidc-issuer"); ok || len(objs["ConfigMap"]) != 0 {
		t.Errorf("insecure gateway: args %v, %d ConfigMaps", gc.Args, len(objs["ConfigMap"]))
	}
	probesUse(t, gw, corev1.URISchemeHTTP)
	if e := env(wk.Spec.Template.Spec.Containers[0]); !strings.HasPrefix(e["MODELFLEET_GATEWAY_URL"], "http://") || e["MODELFLEET_TOKEN_FILE"] != "" {
		t.Errorf("insecure worker env %v", e)
	}
}

// envReadByBinary: every MODELFLEET_* variable the rendered pods get is
// one the modelfleet command reads, so a renamed variable cannot leave
// the charts behind.
func envReadByBinary(t *testing.T, objs map[string][]any) {
	t.Helper()
	read := readByBinary(t, "MODELFLEET_")
	for _, d := range deployments(objs) {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "MODELFLEET_") && !read[e.Name] {
					t.Errorf("%s/%s sets %s, which the binary does not read", d.Name, c.Name, e.Name)
				}
			}
		}
	}
}
