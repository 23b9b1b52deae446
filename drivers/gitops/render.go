package gitops

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/modelfleet/modelfleet"
)

// Paths in the fleet repository. The base is shared; each cluster owns its
// directory, so writers for different sites never touch the same file and
// a rejected push can always be re-applied on top of the other writer's.
const (
	BaseDir     = "base/edge-agent"
	ClustersDir = "clusters"
	// DesiredKey is the ConfigMap key, and the file in the agent's pod,
	// holding the site's modelfleet.Desired as JSON.
	DesiredKey   = "desired.json"
	desiredMount = "/etc/modelfleet/desired"
	appName      = "modelfleet-edge"
	routerPort   = 9001
	// MaxConfigMapBytes is Kubernetes' limit on a ConfigMap's data.
	MaxConfigMapBytes = 1 << 20
)

// ClusterDir is the site's overlay directory.
func ClusterDir(site string) string { return path.Join(ClustersDir, site) }

// kustomization is the part of kustomize's Kustomization we write; a local
// type spares the fleet a dependency on kustomize's API module.
type kustomization struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Namespace  string    `json:"namespace,omitempty"`
	Resources  []string  `json:"resources"`
	Patches    []kpatch  `json:"patches,omitempty"`
	Labels     []klabels `json:"labels,omitempty"`
}

// klabels adds labels without touching selectors, which are immutable on a
// Deployment (kustomize's commonLabels would change them).
type klabels struct {
	Pairs            map[string]string `json:"pairs"`
	IncludeSelectors bool              `json:"includeSelectors"`
}

type kpatch struct {
	Path string `json:"path"`
}

// Render is the fleet repository's content for one site: the shared base
// (the agent's Deployment and Service) and the site's overlay (its desired
// state as a ConfigMap, a patch naming the site and rolling the pods when
// the desired state changes, and for each workload the desired state names
// its manifest as a ConfigMap and a Deployment running it). Paths are
// relative to the repository root.
func Render(cfg Config, site modelfleet.Site, ds modelfleet.Desired) (map[string][]byte, error) {
	cfg = cfg.withDefaults()
	files := map[string][]byte{}
	add := func(p string, obj any) error {
		b, err := manifest(obj)
		if err != nil {
			return fmt.Errorf("gitops: render %s: %w", p, err)
		}
		files[p] = b
		return nil
	}
	// Base.
	if err := add(path.Join(BaseDir, "kustomization.yaml"), kustomization{APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization", Resources: []string{"deployment.yaml", "service.yaml"}}); err != nil {
		return nil, err
	}
	if err := add(path.Join(BaseDir, "deployment.yaml"), baseDeployment(cfg)); err != nil {
		return nil, err
	}
	if err := add(path.Join(BaseDir, "service.yaml"), baseService()); err != nil {
		return nil, err
	}
	// Overlay.
	dir := ClusterDir(site.ID)
	body, err := json.MarshalIndent(ds, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(body) > MaxConfigMapBytes {
		return nil, modelfleet.Errorf(modelfleet.EINVALID, "site %q: desired state is %d bytes; a ConfigMap holds at most %d", site.ID, len(body), MaxConfigMapBytes)
	}
	sum := sha256.Sum256(body)
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "modelfleet-desired", Labels: map[string]string{"app.kubernetes.io/name": appName}},
		Data:       map[string]string{DesiredKey: string(body), "weights.txt": weights(ds)},
	}
	if err := add(path.Join(dir, "desired.yaml"), cm); err != nil {
		return nil, err
	}
	if err := add(path.Join(dir, "agent-patch.yaml"), sitePatch(site, ds, hex.EncodeToString(sum[:]))); err != nil {
		return nil, err
	}
	if err := addStatements(files, dir, ds); err != nil {
		return nil, err
	}
	resources := []string{"../../" + BaseDir, "desired.yaml"}
	wnames := make([]string, 0, len(ds.Workloads))
	for n := range ds.Workloads {
		wnames = append(wnames, n)
	}
	sort.Strings(wnames)
	for _, n := range wnames {
		cm, dep, err := workloadObjects(cfg, site, n, ds.Workloads[n])
		if err != nil {
			return nil, err
		}
		cmFile, depFile, svcFile := "workload-"+n+"-manifest.yaml", "workload-"+n+".yaml", "workload-"+n+"-service.yaml"
		if err := add(path.Join(dir, cmFile), cm); err != nil {
			return nil, err
		}
		if err := add(path.Join(dir, depFile), dep); err != nil {
			return nil, err
		}
		if err := add(path.Join(dir, svcFile), workloadService(dep)); err != nil {
			return nil, err
		}
		resources = append(resources, cmFile, depFile, svcFile)
	}
	k := kustomization{
		APIVersion: "kustomize.config.k8s.io/v1beta1", Kind: "Kustomization",
		Namespace: cfg.Namespace,
		Resources: resources,
		Patches:   []kpatch{{Path: "agent-patch.yaml"}},
		Labels:    []klabels{{Pairs: map[string]string{"modelfleet.io/site": labelValue(site.ID)}}},
	}
	if err := add(path.Join(dir, "kustomization.yaml"), k); err != nil {
		return nil, err
	}
	return files, nil
}

// weights is the split in one line per model, for a human reading a diff.
func weights(ds modelfleet.Desired) string {
	names := make([]string, 0, len(ds.Models))
	for n := range ds.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", n, modelfleet.SplitString(ds.Models[n].Versions))
	}
	return b.String()
}

func baseDeployment(cfg Config) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": appName}
	probe := func(p string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromString("router")}}, PeriodSeconds: 10}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: appName, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)), // one agent per site: it owns the site's model store
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name:  "agent",
						Image: cfg.Image,
						// Workloads run as Deployments of their own (workload.go).
						Args: []string{"edge", "--site", "$(MODELFLEET_SITE)", "--listen", fmt.Sprintf("0.0.0.0:%d", routerPort),
							"--data-dir", "/var/lib/modelfleet", "--desired-file", desiredMount + "/" + DesiredKey, "--external-workloads"},
						Env:            []corev1.EnvVar{{Name: "MODELFLEET_SITE", Value: "unset"}, {Name: "MODELFLEET_GATEWAY_URL", Value: cfg.GatewayURL}},
						Ports:          []corev1.ContainerPort{{Name: "router", ContainerPort: routerPort, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: probe("/readyz"),
						LivenessProbe:  probe("/healthz"),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cfg.CPURequest), corev1.ResourceMemory: resource.MustParse(cfg.MemoryRequest)},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(cfg.MemoryLimit)},
						},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "desired", MountPath: desiredMount, ReadOnly: true},
							{Name: "data", MountPath: "/var/lib/modelfleet"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "desired", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "modelfleet-desired"}}}},
						{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

func baseService() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: appName, Labels: map[string]string{"app.kubernetes.io/name": appName}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app.kubernetes.io/name": appName},
			Ports:    []corev1.ServicePort{{Name: "router", Port: routerPort, TargetPort: intstr.FromString("router"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// sitePatch names the site and stamps the desired state's hash on the pod
// template: a changed ConfigMap then rolls the agent, instead of waiting for
// the kubelet to refresh the mounted file.
func sitePatch(site modelfleet.Site, ds modelfleet.Desired, sum string) *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: appName},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
				"modelfleet.io/desired-sha256":   sum,
				"modelfleet.io/desired-revision": fmt.Sprint(ds.Revision),
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Env: []corev1.EnvVar{{Name: "MODELFLEET_SITE", Value: site.ID}}}}},
		}},
	}
}

// manifest is obj as YAML without the empty fields the API types always
// marshal (creationTimestamp: null, status: {}), which a reviewer of the
// fleet repository should not have to read past.
func manifest(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, err
	}
	return yaml.Marshal(prune(m))
}

func prune(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			x = prune(x)
			if x == nil || (isEmpty(x) && !keepEmpty[k]) {
				delete(t, k)
				continue
			}
			t[k] = x
		}
		return t
	case []any:
		for i := range t {
			t[i] = prune(t[i])
		}
		return t
	}
	return v
}

// keepEmpty are fields whose empty object means something.
var keepEmpty = map[string]bool{"emptyDir": true}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		return len(t) == 0
	}
	return false
}

// labelValue fits a site ID into a label value (63 characters, no '..').
func labelValue(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-_.")
}

func ptr[T any](v T) *T { return &v }

// StatementFile is where a version's signed release statement is committed
// beside the site's manifests (DSSE JSON; kustomize builds only what the
// kustomization lists, so Flux applies none of them): an auditor, or a
// verifier in the cluster, reads what the control plane vouched for next to
// what it asked for. The agent verifies the copy inside desired.yaml.
func StatementFile(model, version string) string {
	return "statement-" + model + "-" + version + ".intoto.json"
}

func addStatements(files map[string][]byte, dir string, ds modelfleet.Desired) error {
	for model, dm := range ds.Models {
		for _, v := range dm.Versions {
			if v.Statement == nil {
				continue
			}
			if err := modelfleet.ValidateName("model name", model); err != nil {
				return err
			}
			if err := modelfleet.ValidateName("model version", v.Version); err != nil {
				return err
			}
			b, err := json.MarshalIndent(v.Statement, "", "  ")
			if err != nil {
				return err
			}
			files[path.Join(dir, StatementFile(model, v.Version))] = append(b, '\n')
		}
	}
	return nil
}
