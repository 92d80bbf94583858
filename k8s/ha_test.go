package k8s

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/imgly/syncer/config"
)

// checkHA holds the HA overlay's invariants: three replicas rolled one at a
// time on different nodes, a PDB keeping two, no volume (the catalog is
// PostgreSQL, its DSN from a Secret), and the pod name as replica id.
func checkHA(t *testing.T, objs []object, d *appsv1.Deployment, cfg *config.Config) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Error("replicas must be 3")
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %q, want RollingUpdate: replicas hand their leases over", d.Spec.Strategy.Type)
	}
	if cfg.Catalog.URL == "" || cfg.Catalog.Path != "" {
		t.Errorf("catalog %+v: want catalog.url (PostgreSQL) and no path", cfg.Catalog)
	}
	if len(find[*corev1.PersistentVolumeClaim](objs)) > 0 {
		t.Error("a PersistentVolumeClaim in the HA build")
	}
	spec := d.Spec.Template.Spec
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s mounts a claim", v.Name)
		}
	}
	var podName, dsn bool
	for _, e := range spec.Containers[0].Env {
		r := e.ValueFrom
		switch {
		case e.Name == "POD_NAME" && r != nil && r.FieldRef != nil && r.FieldRef.FieldPath == "metadata.name":
			podName = true
		case e.Name == "SYNCER_CATALOG_URL" && r != nil && r.SecretKeyRef != nil:
			dsn = true
		}
	}
	if !podName {
		t.Error("POD_NAME is not the downward API's metadata.name: replicas need distinct ids")
	}
	if !dsn {
		t.Error("SYNCER_CATALOG_URL does not come from a Secret")
	}
	labels := d.Spec.Template.Labels
	a := spec.Affinity
	if a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Fatal("no required pod anti-affinity: two replicas could share a node")
	}
	term := a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil || !selects(term.LabelSelector.MatchLabels, labels) {
		t.Errorf("anti-affinity %+v does not keep the pods on different nodes", term)
	}
	pdbs := find[*policyv1.PodDisruptionBudget](objs)
	if len(pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdbs))
	}
	p := pdbs[0]
	if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PDB minAvailable %v, want 2", p.Spec.MinAvailable)
	}
	if p.Spec.Selector == nil || !selects(p.Spec.Selector.MatchLabels, labels) {
		t.Error("the PDB does not select the pods")
	}
}
