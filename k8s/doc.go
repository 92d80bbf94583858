// Package k8s holds syncer's Kubernetes manifests (a kustomize base, an
// overlay per cloud and optional monitoring components). It has no code: its
// test builds every kustomization with krusty and checks the objects, so the
// Kubernetes libraries are linked into that test only, never into syncer.
package k8s
