package config

import (
	"testing"

	"github.com/imgly/syncer/providers/kinds"
)

func TestWatchAndListConcurrency(t *testing.T) {
	cfg := parse(t, `
sources:
  - {id: a, provider: local, path: .}
  - {id: b, provider: local, path: ., watch: false}
  - {id: c, provider: s3, bucket: b, listConcurrency: 16}
  - {id: d, provider: s3, bucket: b}
`, nil)
	watching := func(i int) bool {
		d, _ := kinds.All().Lookup(cfg.Sources[i].Provider)
		return cfg.Sources[i].Watching(d)
	}
	if !watching(0) || watching(1) || watching(2) {
		t.Errorf("watching: %v %v %v, want true (local default) false (off) false (s3)", watching(0), watching(1), watching(2))
	}
	if c, d := cfg.Sources[2].ListConcurrency, cfg.Sources[3].ListConcurrency; c != 16 || d != 0 {
		t.Errorf("listConcurrency %d, %d; want 16, 0 (automatic)", c, d)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"watch on s3":         {"sources:\n  - {id: a, provider: s3, bucket: b, watch: true}\n", `sources[0].watch: applies to provider local, not "s3"`},
		"watch not a bool":    {"sources:\n  - {id: a, provider: local, path: ., watch: often}\n", "watch"},
		"negative ranges":     {"sources:\n  - {id: a, provider: s3, bucket: b, listConcurrency: -1}\n", "sources[0].listConcurrency: -1 is not from 0 (automatic) to 64"},
		"too many ranges":     {"sources:\n  - {id: a, provider: gcs, bucket: b, listConcurrency: 65}\n", "sources[0].listConcurrency: 65 is not from 0"},
		"ranges on local":     {"sources:\n  - {id: a, provider: local, path: ., listConcurrency: 4}\n", `sources[0].listConcurrency: applies to providers s3 and gcs, not "local"`},
		"ranges not a number": {"sources:\n  - {id: a, provider: s3, bucket: b, listConcurrency: many}\n", "listConcurrency"},
	} {
		t.Run(name, func(t *testing.T) { parseErr(t, tc.doc, nil, tc.want) })
	}
}
