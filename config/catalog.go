package config

import (
	neturl "net/url"
	"strings"
)

// validate checks the catalog's location. A URL's text is never quoted:
// it may hold a password.
func (c *Catalog) validate(bad func(field, format string, args ...any)) {
	if c.URL == "" {
		return
	}
	if c.Path != "" {
		bad("catalog", "catalog.path and catalog.url are both set: choose one (path: the embedded catalog; url: PostgreSQL)")
	}
	u, err := neturl.Parse(c.URL)
	switch {
	case err != nil:
		bad("catalog.url", "is not a URL (postgres://user:password@host:5432/db)")
	case u.Scheme != "postgres" && u.Scheme != "postgresql":
		bad("catalog.url", "scheme must be postgres:// or postgresql://")
	case u.Host == "" && !strings.Contains(u.RawQuery, "host="):
		bad("catalog.url", "names no host (postgres://user:password@host:5432/db)")
	}
}
