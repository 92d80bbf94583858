// Package kinds gathers the provider kinds this build of syncer knows into
// one registry. It is the only place that lists them: config and worker
// take the registry from their caller and never name a kind.
package kinds

import (
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/azure"
	"github.com/imgly/syncer/providers/gcs"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/providers/s3"
)

// All returns a new registry of every kind: s3, gcs, azure and local.
func All() *providers.Registry {
	r, err := providers.NewRegistry(s3.Descriptor(), gcs.Descriptor(), azure.Descriptor(), local.Descriptor())
	if err != nil {
		// Four fixed descriptors with distinct names: unreachable unless
		// one is edited into a duplicate, which kinds_test catches.
		panic(err)
	}
	return r
}
