package worker

import (
	"fmt"

	"github.com/imgly/syncer/assetsource"
)

// newAssets builds the asset API over the opened sources, with the data
// endpoints' auth policy.
func (w *Worker) newAssets() (*assetsource.Server, error) {
	srcs := make([]assetsource.Source, 0, len(w.sources))
	for _, s := range w.sources {
		srcs = append(srcs, assetsource.Source{Config: s.Config, Provider: s.Provider, Catalog: s.Catalog})
	}
	a, err := assetsource.New(assetsource.Options{
		Sources: srcs, Open: w.auth.open, Allowed: w.auth.matches,
		PublicURL: w.cfg.HTTP.PublicURL, AllowedOrigins: w.cfg.HTTP.CORS.AllowedOrigins, Log: w.log,
	})
	if err != nil {
		return nil, fmt.Errorf("assets: %w", err)
	}
	return a, nil
}
