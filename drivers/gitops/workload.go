package gitops

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/workload/spec"
)

// A workload the site's desired state names runs as its own Deployment in
// the site's overlay, beside the agent: `modelfleet workload run` with the
// manifest from a ConfigMap, reading the site's MQTT broker and scoring
// through the agent's router Service.
const (
	// WorkloadPrefix names a workload's Deployment and ConfigMap.
	WorkloadPrefix = "modelfleet-workload-"
	// WorkloadKey is the ConfigMap key, and the file in the workload's pod,
	// holding its manifest.
	WorkloadKey    = "workload.yaml"
	workloadMount  = "/etc/modelfleet/workload"
	workloadKeyDir = "/etc/modelfleet/router-key"
	workloadApp    = "modelfleet-workload"
	workloadPort   = 9100
)

// workloadObjects are the ConfigMap with a workload's manifest and the
// Deployment that runs it: one replica, recreated on a change, so two
// versions never consume the site's session at once (the session, not the
// pods, keeps what arrives meanwhile).
func workloadObjects(cfg Config, site modelfleet.Site, name string, dw modelfleet.DesiredWorkload) (*corev1.ConfigMap, *appsv1.Deployment, error) {
	bad := func(format string, args ...any) (*corev1.ConfigMap, *appsv1.Deployment, error) {
		return nil, nil, modelfleet.Errorf(modelfleet.EINVALID, "site %q: workload %q: "+format, append([]any{site.ID, name}, args...)...)
	}
	obj := WorkloadPrefix + name
	if errs := validation.IsDNS1123Label(obj); len(errs) > 0 {
		return bad("%s cannot name a Kubernetes Deployment: %s", obj, strings.Join(errs, "; "))
	}
	if dw.Manifest == "" {
		return bad("the desired state carries no manifest")
	}
	if cfg.MQTTURL == "" {
		return bad("the gitops driver has no MQTT broker URL for workloads (Config.MQTTURL, modelfleet worker --gitops-mqtt-url)")
	}
	m, err := spec.ParseManifest([]byte(dw.Manifest))
	if err != nil {
		return bad("%v", err)
	}
	labels := map[string]string{"app.kubernetes.io/name": workloadApp, "app.kubernetes.io/instance": name}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: obj, Labels: labels},
		Data:       map[string]string{WorkloadKey: dw.Manifest},
	}
	// The configuration, as `modelfleet workload run` reads it from its
	// environment: the same for the agent's image and a workload's own.
	env := []corev1.EnvVar{
		{Name: "MODELFLEET_SITE", Value: site.ID},
		{Name: "MODELFLEET_WORKLOAD_MANIFEST", Value: workloadMount + "/" + WorkloadKey},
		{Name: "MODELFLEET_MQTT_URL", Value: cfg.MQTTURL},
		{Name: "MODELFLEET_ROUTER_URL", Value: fmt.Sprintf("http://%s:%d", appName, routerPort)},
		{Name: "MODELFLEET_WORKLOAD_LISTEN", Value: fmt.Sprintf("0.0.0.0:%d", workloadPort)},
		{Name: "MODELFLEET_DATA_DIR", Value: "/var/lib/modelfleet"},
	}
	image, args := cfg.Image, []string{"workload", "run", "--site", site.ID,
		"--manifest", workloadMount + "/" + WorkloadKey,
		"--broker", "$(MODELFLEET_MQTT_URL)",
		"--router", fmt.Sprintf("http://%s:%d", appName, routerPort),
		"--listen", fmt.Sprintf("0.0.0.0:%d", workloadPort),
		"--data-dir", "/var/lib/modelfleet"}
	if m.Image != "" {
		// The workload's own image, pinned by digest: its entrypoint
		// reads the environment.
		image, args = m.Image, nil
	}
	mounts := []corev1.VolumeMount{
		{Name: "manifest", MountPath: workloadMount, ReadOnly: true},
		{Name: "data", MountPath: "/var/lib/modelfleet"},
	}
	volumes := []corev1.Volume{
		{Name: "manifest", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: obj}}}},
		{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if cfg.WorkloadKeySecret != "" {
		if args != nil {
			args = append(args, "--key-file", workloadKeyDir+"/key")
		}
		env = append(env, corev1.EnvVar{Name: "MODELFLEET_ROUTER_KEY_FILE", Value: workloadKeyDir + "/key"})
		mounts = append(mounts, corev1.VolumeMount{Name: "router-key", MountPath: workloadKeyDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: "router-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: cfg.WorkloadKeySecret}}})
	}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: obj, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// Recreate: the old version drains and leaves before the new one
			// resumes the same MQTT session.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				// The digest rolls the pod when the manifest changes: a
				// mounted ConfigMap alone would not restart the process.
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					"modelfleet.io/workload-version": dw.Version,
					"modelfleet.io/workload-digest":  dw.Digest,
				}},
				Spec: corev1.PodSpec{
					SecurityContext:               &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					TerminationGracePeriodSeconds: ptr(int64(30)), // the drain takes at most 15 s
					Containers: []corev1.Container{{
						Name:  "workload",
						Image: image,
						Args:  args,
						Env:   env,
						Ports: []corev1.ContainerPort{{Name: "health", ContainerPort: workloadPort, Protocol: corev1.ProtocolTCP}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("health")}},
							PeriodSeconds: 10},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
						},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
						VolumeMounts:    mounts,
					}},
					Volumes: volumes,
				},
			},
		},
	}
	return cm, dep, nil
}

// workloadService exposes a workload's health port inside the site's
// namespace: the agent (--external-workloads) reads GET /healthz there to
// report which version runs, so a release's step waits for the workload's
// rollout as it waits for the models.
func workloadService(dep *appsv1.Deployment) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: dep.Name, Labels: dep.Labels},
		Spec: corev1.ServiceSpec{
			Selector: dep.Spec.Selector.MatchLabels,
			Ports:    []corev1.ServicePort{{Name: "health", Port: workloadPort, TargetPort: intstr.FromString("health"), Protocol: corev1.ProtocolTCP}},
		},
	}
}
