package worker

import (
	"log/slog"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// catalog.url opens the PostgreSQL catalog, catalog.path the bbolt one.
func TestOpenCatalogByConfig(t *testing.T) {
	dsn := testkit.StartPostgres(t).NewDatabase(t)
	for name, cfg := range map[string]config.Catalog{"url": {URL: dsn}, "path": {Path: t.TempDir()}} {
		t.Run(name, func(t *testing.T) {
			c, err := OpenCatalog(t.Context(), cfg, slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := c.Source("s", providers.ByteOrder)
			if _, err := s.Commit(t.Context(), []catalog.Mutation{{Object: providers.Object{Key: "k", ETag: "1"}, Origin: catalog.Scan}}); err != nil {
				t.Fatal(err)
			}
			// Only the PostgreSQL backend fences its sources.
			_, fences := catalog.BackendOf(c).Source("s", providers.ByteOrder, false).(catalog.Fencer)
			if fences != (name == "url") {
				t.Errorf("%s opened the wrong backend", name)
			}
		})
	}
}
