package worker

import (
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
)

// ListConcurrency is the number of key ranges a scan of src lists at once:
// its listConcurrency, or when unset providers.DefaultListConcurrency for
// the stores that can list ranges (S3, GCS), one for the others (a local
// tree is read once per scan by one walker; Azure cannot start a listing
// after a key).
func ListConcurrency(src config.Source) int {
	switch {
	case src.ListConcurrency > 0:
		return src.ListConcurrency
	case src.Provider == "s3" || src.Provider == "gcs":
		return providers.DefaultListConcurrency
	}
	return 1
}
