package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/ociimage"
)

// The shutdown budget, from worker.Run: the scan cancelled at SIGTERM
// commits what it listed (scanCancel, a generous bound on one batch
// commit), the stream check at start-up may hold the publisher back
// (ensureStream, worker.Run's 30 s), then the outbox flush
// (worker.Options.FlushTimeout's default, 10 s) and the HTTP server's
// shutdown (5 s). docs/deploy.md states the same sum.
const (
	scanCancel   = 10 * time.Second
	ensureStream = 30 * time.Second
	flushTimeout = 10 * time.Second
	httpShutdown = 5 * time.Second
	budget       = scanCancel + ensureStream + flushTimeout + httpShutdown
)

// namespace is where every object goes (the base's Namespace).
const namespace = "syncer"

// kustomization is one build and what its cloud must show.
type kustomization struct {
	dir        string
	provider   string // the source provider its syncer.yaml uses ("" for the base)
	saAnnot    string // the identity annotation on the ServiceAccount
	podLabels  map[string]string
	components bool // ServiceMonitor, PrometheusRule and dashboard included
	ha         bool // replicas on a shared PostgreSQL catalog (checkHA)
}

var builds = func() []kustomization {
	b := []kustomization{
		{dir: "base"},
		{dir: "overlays/aws", provider: "s3", saAnnot: "eks.amazonaws.com/role-arn"},
		{dir: "overlays/gcp", provider: "gcs", saAnnot: "iam.gke.io/gcp-service-account"},
		{dir: "overlays/azure", provider: "azure", saAnnot: "azure.workload.identity/client-id",
			podLabels: map[string]string{"azure.workload.identity/use": "true"}},
		{dir: "overlays/ha", provider: "s3", ha: true},
	}
	// Each again with every component, as an overlay that uncomments its
	// components: list builds.
	for _, k := range b[:len(b):len(b)] {
		k.components = true
		b = append(b, k)
	}
	return b
}()

func TestKustomizations(t *testing.T) {
	docs, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range builds {
		name := k.dir
		if k.components {
			name += "+components"
		}
		t.Run(name, func(t *testing.T) {
			objs := build(t, k.dir, k.components)
			checkBuild(t, k, objs, string(docs))
		})
	}
}

// object is one decoded manifest.
type object struct {
	kind, name string
	obj        any
}

// build runs kustomize over k8s/dir (in an in-memory copy of k8s/), with
// every component of k8s/components added on top when components is set.
func build(t *testing.T, dir string, components bool) []object {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/k8s", p), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	comps, err := filepath.Glob("components/*/kustomization.yaml")
	if err != nil || len(comps) == 0 {
		t.Fatalf("no components: %v", err)
	}
	root := "/k8s/" + dir
	if components {
		root = "/k8s/with-components/" + strings.ReplaceAll(dir, "/", "-")
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: " + namespace +
			"\nresources: [../../" + dir + "]\ncomponents:\n"
		for _, c := range comps {
			k += "  - ../../" + filepath.Dir(c) + "\n"
		}
		if err := mem.WriteFile(root+"/kustomization.yaml", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, root)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []object
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		o, err := decode(y)
		if err != nil {
			t.Errorf("%s %s: %v\n%s", r.GetKind(), r.GetName(), err, y)
			continue
		}
		// Everything in the one namespace the base creates: an object
		// without one would land in whatever kubectl's context names.
		if ns := r.GetNamespace(); r.GetKind() != "Namespace" && ns != namespace {
			t.Errorf("%s %s: namespace %q, want %q", r.GetKind(), r.GetName(), ns, namespace)
		}
		out = append(out, object{kind: r.GetKind(), name: r.GetName(), obj: o})
	}
	return out
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// decode reads one object strictly: an unknown or duplicate field fails, as
// kubectl apply --validate=strict would refuse it. The Prometheus Operator's
// kinds are not in k8s.io/api; they decode into the subset of their schema
// these manifests use, just as strictly.
func decode(y []byte) (any, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(y, &tm); err != nil {
		return nil, err
	}
	var crd any
	switch tm.APIVersion + "/" + tm.Kind {
	case "monitoring.coreos.com/v1/ServiceMonitor":
		crd = &serviceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		crd = &prometheusRule{}
	}
	if crd != nil {
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			return nil, err
		}
		d := json.NewDecoder(bytes.NewReader(j))
		d.DisallowUnknownFields()
		return crd, d.Decode(crd)
	}
	ser := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	o, _, err := ser.Decode(y, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	return o, nil
}

type meta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   meta   `json:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   meta   `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func find[T any](objs []object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func checkBuild(t *testing.T, k kustomization, objs []object, docs string) {
	deps := find[*appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want 1", len(deps))
	}
	d := deps[0]
	if !k.ha {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Error("replicas must be 1: bbolt has one writer")
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("strategy %q, want Recreate: a rolling update would start a second writer on the volume", d.Spec.Strategy.Type)
		}
	}
	if len(find[*appsv1.StatefulSet](objs)) > 0 {
		t.Error("a StatefulSet besides the Deployment")
	}
	pod := d.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	cfg := checkConfigMap(t, objs, pod.Spec, c)
	if cfg == nil {
		return
	}
	checkHTTP(t, cfg, c)
	checkRestricted(t, pod.Spec)
	if k.ha {
		checkHA(t, objs, d, cfg)
	} else {
		checkVolumes(t, objs, pod.Spec, cfg)
	}
	checkServiceAndPolicy(t, objs, pod, c)
	checkSecretsDocumented(t, pod.Spec, docs)

	grace := time.Duration(0)
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace < budget {
		t.Errorf("terminationGracePeriodSeconds %v < the shutdown budget %v", grace, budget)
	}
	if !strings.Contains(docs, fmt.Sprintf("%d s", int(budget.Seconds()))) {
		t.Errorf("docs/deploy.md does not state the shutdown budget (%d s)", int(budget.Seconds()))
	}

	sas := find[*corev1.ServiceAccount](objs)
	if len(sas) != 1 || pod.Spec.ServiceAccountName != sas[0].Name {
		t.Fatalf("the pod's service account %q is not the one ServiceAccount built", pod.Spec.ServiceAccountName)
	}
	if k.saAnnot != "" && sas[0].Annotations[k.saAnnot] == "" {
		t.Errorf("ServiceAccount lacks the identity annotation %s", k.saAnnot)
	}
	for l, v := range k.podLabels {
		if pod.Labels[l] != v {
			t.Errorf("pod label %s = %q, want %q", l, pod.Labels[l], v)
		}
	}
	if k.provider != "" {
		if len(cfg.Sources) == 0 {
			t.Fatal("the overlay's syncer.yaml has no source")
		}
		for _, s := range cfg.Sources {
			n := s.Notifications
			if s.Provider != k.provider {
				t.Errorf("source %s: provider %q, want %q", s.ID, s.Provider, k.provider)
			}
			if n.SQS == nil && n.PubSub == nil && n.StorageQueue == nil {
				t.Errorf("source %s: no notification consumer: changes would wait for scans", s.ID)
			}
		}
	}
	if k.components {
		checkMonitoring(t, objs)
	}
}

// checkConfigMap finds the ConfigMap mounted at the config path and parses
// its syncer.yaml as syncer would, with ${VAR} resolved from the names the
// container's env sets (and nothing else).
func checkConfigMap(t *testing.T, objs []object, spec corev1.PodSpec, c corev1.Container) *config.Config {
	t.Helper()
	var cmName string
	for _, m := range c.VolumeMounts {
		if m.MountPath == filepath.Dir(ociimage.ConfigPath) {
			for _, v := range spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					cmName = v.ConfigMap.Name
				}
			}
		}
	}
	if cmName == "" {
		t.Fatalf("no ConfigMap mounted at %s", filepath.Dir(ociimage.ConfigPath))
	}
	if strings.Join(c.Args, " ") != "run --config "+ociimage.ConfigPath {
		t.Errorf("args %q, want run --config %s", c.Args, ociimage.ConfigPath)
	}
	var cm *corev1.ConfigMap
	for _, o := range find[*corev1.ConfigMap](objs) {
		if o.Name == cmName {
			cm = o
		}
	}
	if cm == nil {
		t.Fatalf("the mounted ConfigMap %q is not in the build", cmName)
	}
	y, ok := cm.Data[filepath.Base(ociimage.ConfigPath)]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", cmName, filepath.Base(ociimage.ConfigPath))
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = e.Value != "" || e.ValueFrom != nil
	}
	lookup := func(name string) (string, bool) {
		if v, ok := envSamples[name]; ok && env[name] {
			return v, true // a value of the form its field needs
		}
		if env[name] {
			return "value-of-" + name, true
		}
		return "", false
	}
	cfg, err := config.Parse([]byte(y), lookup)
	if err != nil {
		t.Fatalf("ConfigMap %s: syncer.yaml: %v", cmName, err)
	}
	if cfg.NATS.URL == "" || cfg.NATS.URL == "embedded" {
		t.Errorf("nats.url %q: a pod must use the cluster's NATS", cfg.NATS.URL)
	}
	return cfg
}

// envSamples are values for the variables whose field checks its form.
var envSamples = map[string]string{"SYNCER_CATALOG_URL": "postgres://syncer:secret@postgres.syncer.svc:5432/syncer"}

func checkHTTP(t *testing.T, cfg *config.Config, c corev1.Container) {
	t.Helper()
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		t.Fatalf("http.listen %q: %v", cfg.HTTP.Listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		t.Errorf("http.listen %q: loopback is unreachable for probes and the Service", cfg.HTTP.Listen)
	}
	want, _ := strconv.Atoi(port)
	resolve := func(p intstr.IntOrString) int {
		if p.Type == intstr.Int {
			return p.IntValue()
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort)
			}
		}
		return -1
	}
	var ports []int
	for _, cp := range c.Ports {
		ports = append(ports, int(cp.ContainerPort))
	}
	if !slices.Equal(ports, []int{want}) {
		t.Errorf("container ports %v, want [%d] (http.listen %s)", ports, want, cfg.HTTP.Listen)
	}
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	paths := map[string]string{"liveness": "/healthz", "readiness": "/readyz", "startup": "/healthz"}
	for name, p := range probes {
		if p == nil {
			if name != "startup" {
				t.Errorf("no %s probe", name)
			}
			continue
		}
		if p.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", name)
			continue
		}
		if p.HTTPGet.Path != paths[name] {
			t.Errorf("%s probe path %q, want %q", name, p.HTTPGet.Path, paths[name])
		}
		if got := resolve(p.HTTPGet.Port); got != want {
			t.Errorf("%s probe port %v = %d, want http.listen's %d", name, p.HTTPGet.Port.String(), got, want)
		}
	}
}

// checkRestricted applies the restricted Pod Security Standard to the pod
// and every container, plus the image's own non-root user.
func checkRestricted(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("host namespaces are not allowed")
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s: hostPath is not allowed", v.Name)
		}
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = psc.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			t.Errorf("container %s: runAsNonRoot is not true", c.Name)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid == nil || *uid == 0 {
			t.Errorf("container %s: runAsUser must be a non-zero number", c.Name)
		} else if *uid != ociimage.UID {
			t.Errorf("container %s: runAsUser %d, the image's user is %d", c.Name, *uid, ociimage.UID)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s: privileged", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("container %s: capabilities must drop ALL", c.Name)
		} else if len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: adds capabilities %v", c.Name, sc.Capabilities.Add)
		}
		sp := sc.SeccompProfile
		if sp == nil {
			sp = psc.SeccompProfile
		}
		if sp == nil || (sp.Type != corev1.SeccompProfileTypeRuntimeDefault && sp.Type != corev1.SeccompProfileTypeLocalhost) {
			t.Errorf("container %s: seccompProfile must be RuntimeDefault (or Localhost)", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: needs a CPU request and a memory limit", c.Name)
		}
	}
}

// checkVolumes: the catalog is on the ReadWriteOnce claim, and /tmp is
// writable although the root file system is not.
func checkVolumes(t *testing.T, objs []object, spec corev1.PodSpec, cfg *config.Config) {
	t.Helper()
	c := spec.Containers[0]
	mounted := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name {
				mounted[m.MountPath] = v
			}
		}
	}
	cat, ok := mounted[filepath.Clean(cfg.Catalog.Path)]
	if !ok || cat.PersistentVolumeClaim == nil {
		t.Fatalf("catalog.path %s is not a mounted PersistentVolumeClaim", cfg.Catalog.Path)
	}
	var found bool
	for _, p := range find[*corev1.PersistentVolumeClaim](objs) {
		if p.Name == cat.PersistentVolumeClaim.ClaimName {
			found = true
			if !slices.Equal(p.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("PVC %s access modes %v, want [ReadWriteOnce]", p.Name, p.Spec.AccessModes)
			}
		}
	}
	if !found {
		t.Errorf("claim %s is not in the build", cat.PersistentVolumeClaim.ClaimName)
	}
	if v, ok := mounted["/tmp"]; !ok || v.EmptyDir == nil {
		t.Error("/tmp is not an emptyDir: the root file system is read-only")
	}
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkServiceAndPolicy(t *testing.T, objs []object, pod corev1.PodTemplateSpec, c corev1.Container) {
	t.Helper()
	svcs := find[*corev1.Service](objs)
	if len(svcs) != 1 {
		t.Fatalf("%d Services, want 1", len(svcs))
	}
	svc := svcs[0]
	if !selects(svc.Spec.Selector, pod.Labels) {
		t.Errorf("Service selector %v does not select the pod (%v)", svc.Spec.Selector, pod.Labels)
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.StrVal != c.Ports[0].Name && p.TargetPort.IntValue() != int(c.Ports[0].ContainerPort) {
			t.Errorf("Service port %s targets %s, not the container's http port", p.Name, p.TargetPort.String())
		}
	}
	nps := find[*networkingv1.NetworkPolicy](objs)
	if len(nps) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(nps))
	}
	np := nps[0]
	if !selects(np.Spec.PodSelector.MatchLabels, pod.Labels) {
		t.Errorf("NetworkPolicy selects %v, not the pod", np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policy types %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	for _, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			t.Error("an ingress rule allows every port")
		}
		for _, p := range r.Ports {
			if p.Port == nil || (p.Port.StrVal != c.Ports[0].Name && p.Port.IntValue() != int(c.Ports[0].ContainerPort)) {
				t.Errorf("ingress to port %v, want only the HTTP port", p.Port)
			}
		}
	}
	egress := map[int32]bool{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil {
				egress[int32(p.Port.IntValue())] = true
			}
		}
	}
	for _, p := range []int32{53, 4222, 443} {
		if !egress[p] {
			t.Errorf("no egress to port %d (DNS, NATS, cloud APIs)", p)
		}
	}
}

// checkSecretsDocumented: every Secret the pod reads, and every key of it,
// is named in docs/deploy.md, so nobody has to read the manifests to know
// what to create.
func checkSecretsDocumented(t *testing.T, spec corev1.PodSpec, docs string) {
	t.Helper()
	need := func(what string) {
		if !strings.Contains(docs, "`"+what+"`") {
			t.Errorf("docs/deploy.md does not document `%s`", what)
		}
	}
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
				need(r.SecretKeyRef.Name)
				need(r.SecretKeyRef.Key)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				need(e.SecretRef.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			need(v.Secret.SecretName)
			for _, it := range v.Secret.Items {
				need(it.Key)
			}
		}
	}
}

// The metrics syncer exports (docs/operations.md). Alerts and dashboard
// panels may use only these.
var metrics = []string{
	"syncer_build_info",
	"syncer_source_last_scan_success_timestamp_seconds",
	"syncer_source_outbox_pending_changes",
	"syncer_source_objects",
	"syncer_source_guard_held",
	"syncer_scan_duration_seconds",
	"syncer_scans_total",
	"syncer_nats_connected",
	"syncer_notifications_total",
	"syncer_notification_lag_seconds",
	"syncer_notification_transport_errors_total",
	"syncer_notification_stats_total",
	"syncer_scan_objects",
	"syncer_events_published_total",
	"syncer_publish_errors_total",
	"syncer_changes_published_total",
	"syncer_change_publish_latency_seconds",
}

var metricRe = regexp.MustCompile(`\bsyncer_[a-z_]+`)

func checkMetricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	var out []string
	for _, m := range metricRe.FindAllString(expr, -1) {
		base := m
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(m, suf); ok && slices.Contains(metrics, b) {
				base = b
			}
		}
		if !slices.Contains(metrics, base) {
			t.Errorf("%s: unknown metric %s", where, m)
		}
		out = append(out, base)
	}
	return out
}

func checkMonitoring(t *testing.T, objs []object) {
	t.Helper()
	svc := find[*corev1.Service](objs)[0]
	sms := find[*serviceMonitor](objs)
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sms))
	}
	sm := sms[0]
	if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
		t.Errorf("ServiceMonitor selects %v, not the Service (%v)", sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want port %s path /metrics", sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
	}

	rules := find[*prometheusRule](objs)
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	alerts := map[string]string{}
	for _, g := range rules[0].Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: needs alert, expr, severity and summary", r)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
			}
			alerts[r.Alert] = r.Expr
			checkMetricNames(t, "alert "+r.Alert, r.Expr)
		}
	}
	for alert, metric := range map[string]string{
		"SyncerScanFailing":              "syncer_source_last_scan_success_timestamp_seconds",
		"SyncerOutboxGrowing":            "syncer_source_outbox_pending_changes",
		"SyncerNotificationConsumerDown": "syncer_notification_transport_errors_total",
		"SyncerNATSDisconnected":         "syncer_nats_connected",
		"SyncerNotificationsFailing":     "syncer_notifications_total",
		"SyncerNotificationLag":          "syncer_notification_lag_seconds",
		"SyncerGuardHeld":                "syncer_source_guard_held",
	} {
		if !strings.Contains(alerts[alert], metric) {
			t.Errorf("alert %s missing or not on %s", alert, metric)
		}
	}

	var dash *corev1.ConfigMap
	for _, cm := range find[*corev1.ConfigMap](objs) {
		if cm.Labels["grafana_dashboard"] != "" {
			dash = cm
		}
	}
	if dash == nil {
		t.Fatal("no dashboard ConfigMap (label grafana_dashboard)")
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(dash.Data["dashboard.json"]), &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range checkMetricNames(t, "panel "+p.Title, q.Expr) {
				used[m] = true
			}
		}
	}
	// Scans, changes by op, outbox depth, publish latency, notification lag.
	for _, m := range []string{"syncer_scan_duration_seconds", "syncer_changes_published_total",
		"syncer_source_outbox_pending_changes", "syncer_change_publish_latency_seconds", "syncer_notification_lag_seconds"} {
		if !used[m] {
			t.Errorf("the dashboard has no panel on %s", m)
		}
	}
}

// TestStrictDecode: the strict decoding the manifests pass must be able to
// fail.
func TestStrictDecode(t *testing.T) {
	bad := map[string]string{
		"unknown field": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nautomountToken: false\n",
		"nested":        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 1}\n",
		"crd":           "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoint: []}\n",
		"wrong type":    "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: 8080}\n",
	}
	for name, y := range bad {
		if _, err := decode([]byte(y)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := decode([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nautomountServiceAccountToken: false\n")); err != nil {
		t.Errorf("valid object: %v", err)
	}
}
