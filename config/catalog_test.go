package config

import (
	"strings"
	"testing"
)

func TestCatalogURL(t *testing.T) {
	const secret = "pa55-w0rd"
	env := func(k string) (string, bool) {
		if k == "PG_DSN" {
			return "postgres://syncer:" + secret + "@db:5432/syncer", true
		}
		return "", false
	}
	parse := func(catalog string) (*Config, error) {
		return Parse([]byte("nats: {url: embedded}\ncatalog: "+catalog+"\n"), env)
	}
	cfg, err := parse(`{url: "${PG_DSN}"}`)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Catalog.Path != "" || !strings.HasPrefix(cfg.Catalog.URL, "postgres://") || cfg.NATS.StoreDir != "./data/nats" {
		t.Errorf("catalog %+v, nats store %q", cfg.Catalog, cfg.NATS.StoreDir)
	}
	for _, tc := range []struct{ catalog, want string }{
		{`{url: "${PG_DSN}", path: ./data}`, "catalog.path and catalog.url are both set"},
		{`{url: "mysql://u:` + secret + `@h/db"}`, "catalog.url: scheme must be postgres://"},
		{`{url: "postgres://u:` + secret + `@/db"}`, "catalog.url: names no host"},
		{`{url: "postgres://u:` + secret + `@h:port/db"}`, "catalog.url: is not a URL"},
	} {
		_, err := parse(tc.catalog)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("catalog %s: error %v, want %q", tc.catalog, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("catalog %s: error shows the password: %v", tc.catalog, err)
		}
	}
}
