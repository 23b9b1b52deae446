package validate

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const charts = "../helm"

// typed is every kind the charts may render, with its apiVersion: a manifest
// of another kind, or with an unknown or misspelt field, fails.
var typed = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Deployment":            {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Service":               {"v1", func() any { return &corev1.Service{} }},
	"ServiceAccount":        {"v1", func() any { return &corev1.ServiceAccount{} }},
	"PersistentVolumeClaim": {"v1", func() any { return &corev1.PersistentVolumeClaim{} }},
	"PodDisruptionBudget":   {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"NetworkPolicy":         {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
	"ConfigMap":             {"v1", func() any { return &corev1.ConfigMap{} }},
	"Secret":                {"v1", func() any { return &corev1.Secret{} }},
	"ServiceMonitor":        {"monitoring.coreos.com/v1", func() any { return &serviceMonitor{} }},
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// the cloud chart renders (decoded strictly: a misspelt field fails).
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// render renders a chart as `helm template` would, then decodes every
// manifest strictly into its API type.
func render(t *testing.T, chart string, values map[string]any) (map[string][]any, error) {
	t.Helper()
	ch, err := loader.Load(filepath.Join(charts, chart))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: "mf", Namespace: "modelfleet", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	objs := map[string][]any{}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, ".tpl") || strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for i, doc := range strings.Split(out[name], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s #%d: %v\n%s", name, i, err, doc)
			}
			k, ok := typed[head.Kind]
			if !ok || k.apiVersion != head.APIVersion {
				t.Fatalf("%s #%d: unexpected %s %s", name, i, head.APIVersion, head.Kind)
			}
			obj := k.new()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s #%d does not decode strictly as %s: %v\n%s", name, i, head.Kind, err, doc)
			}
			objs[head.Kind] = append(objs[head.Kind], obj)
		}
	}
	return objs, nil
}

func lintChart(t *testing.T, chart string, values map[string]any) {
	t.Helper()
	l := lint.All(filepath.Join(charts, chart), values, "modelfleet", false)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint %s: %s", chart, m)
		}
	}
}

// hardened checks what every pod of ours must have: non-root, read-only
// root, no privilege escalation, requests and a memory limit, probes on
// anything that listens.
func hardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pod may run as root", d.Name)
	}
	for _, c := range ps.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s/%s: security context %+v", d.Name, c.Name, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v", d.Name, c.Name, c.Resources)
		}
		if len(c.Ports) > 0 && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
			t.Errorf("%s/%s: listens without probes", d.Name, c.Name)
		}
	}
	if !reflect.DeepEqual(d.Spec.Selector.MatchLabels, subset(d.Spec.Template.Labels, d.Spec.Selector.MatchLabels)) {
		t.Errorf("%s: selector %v does not match pod labels %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
}

func subset(labels, keys map[string]string) map[string]string {
	out := map[string]string{}
	for k := range keys {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

func deployments(objs map[string][]any) map[string]*appsv1.Deployment {
	out := map[string]*appsv1.Deployment{}
	for _, o := range objs["Deployment"] {
		d := o.(*appsv1.Deployment)
		out[d.Name] = d
	}
	return out
}

func env(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

func TestCloudChart(t *testing.T) {
	lintChart(t, "modelfleet-cloud", cloudValues(nil))
	objs, err := render(t, "modelfleet-cloud", cloudValues(nil))
	if err != nil {
		t.Fatal(err)
	}
	ds := deployments(objs)
	gw, wk := ds["mf-modelfleet-cloud-gateway"], ds["mf-modelfleet-cloud-worker"]
	if gw == nil || wk == nil {
		t.Fatalf("deployments %v", ds)
	}
	hardened(t, gw)
	hardened(t, wk)
	if *gw.Spec.Replicas != 1 || gw.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("the gateway's bbolt directory needs exactly one writer")
	}
	e := env(gw.Spec.Template.Spec.Containers[0])
	if e["MODELFLEET_TEMPORAL_ADDRESS"] != "temporal-frontend.temporal:7233" || e["MODELFLEET_GATEWAY_URL"] != "https://mf-modelfleet-cloud-gateway.modelfleet:8080" {
		t.Errorf("gateway env %v", e)
	}
	if len(objs["PersistentVolumeClaim"]) != 1 || len(objs["Service"]) != 2 || len(objs["ServiceAccount"]) != 1 || len(objs["ServiceMonitor"]) != 0 || len(objs["ConfigMap"]) != 1 || len(objs["Secret"]) != 0 {
		t.Errorf("kinds: %d PVC, %d Service, %d ServiceAccount, %d ServiceMonitor, %d ConfigMap, %d Secret", len(objs["PersistentVolumeClaim"]), len(objs["Service"]), len(objs["ServiceAccount"]), len(objs["ServiceMonitor"]), len(objs["ConfigMap"]), len(objs["Secret"]))
	}
	// The worker serves /metrics, /readyz and /healthz on its metrics port,
	// and says so to Prometheus.
	wc := wk.Spec.Template.Spec.Containers[0]
	if !slices.Contains(wc.Args, "--metrics-addr=:9090") || len(wc.Ports) != 1 || wc.Ports[0].ContainerPort != 9090 ||
		wc.ReadinessProbe.HTTPGet.Path != "/readyz" || wc.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("worker container: args %v ports %v probes %+v %+v", wc.Args, wc.Ports, wc.ReadinessProbe, wc.LivenessProbe)
	}
	if a := wk.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "9090" || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("worker pod annotations %v", a)
	}
	sm := cloudValues(map[string]any{"worker": map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kps"}}}}})
	lintChart(t, "modelfleet-cloud", sm)
	objs, err = render(t, "modelfleet-cloud", sm)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs["ServiceMonitor"]) != 1 {
		t.Fatalf("%d ServiceMonitors, want one", len(objs["ServiceMonitor"]))
	}
	mon := objs["ServiceMonitor"][0].(*serviceMonitor)
	var metricsSvc *corev1.Service
	for _, o := range objs["Service"] {
		if svc := o.(*corev1.Service); strings.HasSuffix(svc.Name, "-worker-metrics") {
			metricsSvc = svc
		}
	}
	if metricsSvc == nil || !reflect.DeepEqual(subset(metricsSvc.Labels, mon.Spec.Selector.MatchLabels), mon.Spec.Selector.MatchLabels) ||
		mon.Metadata.Labels["release"] != "kps" || len(mon.Spec.Endpoints) != 1 || mon.Spec.Endpoints[0].Port != metricsSvc.Spec.Ports[0].Name {
		t.Errorf("service monitor %+v does not select the worker's metrics service %+v", mon, metricsSvc)
	}

	// mTLS to Temporal and Workload Identity.
	tls := cloudValues(map[string]any{
		"temporal": map[string]any{"tls": map[string]any{"enabled": true, "secretName": "temporal-mtls", "serverName": "ns.tmprl.cloud"}},
		"azure":    map[string]any{"workloadIdentityClientID": "11111111-2222-3333-4444-555555555555"},
	})
	lintChart(t, "modelfleet-cloud", tls)
	objs, err = render(t, "modelfleet-cloud", tls)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments(objs) {
		c := d.Spec.Template.Spec.Containers[0]
		if env(c)["MODELFLEET_TEMPORAL_TLS_CERT"] != "/etc/modelfleet/temporal-tls/tls.crt" || env(c)["MODELFLEET_TEMPORAL_TLS_SERVER_NAME"] != "ns.tmprl.cloud" {
			t.Errorf("%s: tls env %v", d.Name, env(c))
		}
		var mounted bool
		for _, v := range d.Spec.Template.Spec.Volumes {
			mounted = mounted || (v.Secret != nil && v.Secret.SecretName == "temporal-mtls")
		}
		if !mounted || d.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
			t.Errorf("%s: tls secret mounted %v, labels %v", d.Name, mounted, d.Spec.Template.Labels)
		}
	}
	if sa := objs["ServiceAccount"][0].(*corev1.ServiceAccount); sa.Annotations["azure.workload.identity/client-id"] == "" {
		t.Error("service account lacks the workload identity client id")
	}
	if _, err := render(t, "modelfleet-cloud", cloudValues(map[string]any{"temporal": map[string]any{"tls": map[string]any{"enabled": true}}})); err == nil || !strings.Contains(err.Error(), "secretName is required") {
		t.Errorf("tls without a secret: %v", err)
	}
}

func TestEdgeChart(t *testing.T) {
	site := map[string]any{
		"site":          map[string]any{"id": "plant-a-line-3", "labels": map[string]any{"ring": "canary", "plant": "plant-a"}},
		"networkPolicy": map[string]any{"gateway": map[string]any{"cidr": "10.0.0.20/32", "port": 443}},
	}
	lintChart(t, "modelfleet-edge", site)
	objs, err := render(t, "modelfleet-edge", site)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "PersistentVolumeClaim"} {
		if len(objs[kind]) != 1 {
			t.Fatalf("%d %s, want 1", len(objs[kind]), kind)
		}
	}
	d := objs["Deployment"][0].(*appsv1.Deployment)
	hardened(t, d)
	noTemporal(t, d)
	c := d.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"edge", "--site=plant-a-line-3", "--listen=0.0.0.0:9001", "--label=ring=canary", "--label=plant=plant-a", "--data-dir=/var/lib/modelfleet"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	// Requests sized from the measured footprint (36-39 MiB RSS with a model).
	if c.Resources.Requests.Memory().Value() < 40<<20 || c.Resources.Limits.Memory().Value() < 128<<20 {
		t.Errorf("memory %v under the measured footprint", c.Resources)
	}
	pdb := objs["PodDisruptionBudget"][0].(*policyv1.PodDisruptionBudget)
	if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, subset(d.Spec.Template.Labels, pdb.Spec.Selector.MatchLabels)) || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("pdb %+v", pdb.Spec)
	}
	svc := objs["Service"][0].(*corev1.Service)
	if !reflect.DeepEqual(svc.Spec.Selector, subset(d.Spec.Template.Labels, svc.Spec.Selector)) || svc.Spec.Ports[0].TargetPort.String() != "router" {
		t.Errorf("service %+v", svc.Spec)
	}
	checkNetworkPolicy(t, objs["NetworkPolicy"][0].(*networkingv1.NetworkPolicy))

	// Without persistence the store is an emptyDir (the site's identity
	// keeps a volume of its own: TestEdgeChartEnrollment); a site id is
	// required.
	objs, err = render(t, "modelfleet-edge", map[string]any{"site": map[string]any{"id": "s"}, "persistence": map[string]any{"enabled": false}})
	if err != nil || len(objs["PersistentVolumeClaim"]) != 1 || objs["Deployment"][0].(*appsv1.Deployment).Spec.Template.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("without persistence: %v", err)
	}
	if _, err := render(t, "modelfleet-edge", nil); err == nil || !strings.Contains(err.Error(), "site.id is required") {
		t.Errorf("no site id: %v", err)
	}
}

// checkNetworkPolicy: ingress to the router port only; egress to DNS and
// the gateway only (the agent never dials Temporal).
func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy) {
	t.Helper()
	if fmt.Sprint(np.Spec.PolicyTypes) != "[Ingress Egress]" {
		t.Errorf("policy types %v", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "router" {
		t.Errorf("ingress %+v", np.Spec.Ingress)
	}
	var got []string
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			to := "dns"
			if e.To[0].IPBlock != nil {
				to = e.To[0].IPBlock.CIDR
			}
			got = append(got, fmt.Sprintf("%s:%s/%s", to, p.Port.String(), *p.Protocol))
		}
	}
	want := []string{"dns:53/UDP", "dns:53/TCP", "10.0.0.20/32:443/TCP"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("egress %v, want %v", got, want)
	}
}
