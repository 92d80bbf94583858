package config

import "testing"

func TestGuard(t *testing.T) {
	cfg := parse(t, `
sources:
  - {id: a, provider: s3, bucket: b}
  - {id: b, provider: s3, bucket: b, guard: {maxDeletePercent: 0, maxDeletes: 10}}
  - {id: c, provider: local, path: ., guard: {maxDeletePercent: 100}}
`, nil)
	if g := cfg.Sources[0].Guard; g.Percent() != 50 || g.MaxDeletes != 0 {
		t.Errorf("defaults: %d%%, %d; want 50%%, 0", g.Percent(), g.MaxDeletes)
	}
	if g := cfg.Sources[1].Guard; g.Percent() != 0 || g.MaxDeletes != 10 {
		t.Errorf("explicit 0%%: %d%%, %d; want 0%% (every deletion held), 10", g.Percent(), g.MaxDeletes)
	}
	if g := cfg.Sources[2].Guard; g.Percent() != 100 {
		t.Errorf("100%%: %d", g.Percent())
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"percent over 100": {"sources:\n  - {id: a, provider: s3, bucket: b, guard: {maxDeletePercent: 101}}\n", "sources[0].guard.maxDeletePercent: 101 is not from 0 to 100"},
		"negative percent": {"sources:\n  - {id: a, provider: s3, bucket: b, guard: {maxDeletePercent: -1}}\n", "sources[0].guard.maxDeletePercent"},
		"negative count":   {"sources:\n  - {id: a, provider: s3, bucket: b, guard: {maxDeletes: -5}}\n", "sources[0].guard.maxDeletes: must not be negative"},
		"unknown key":      {"sources:\n  - {id: a, provider: s3, bucket: b, guard: {maxDelete: 5}}\n", "maxDelete"},
		"not a number":     {"sources:\n  - {id: a, provider: s3, bucket: b, guard: {maxDeletePercent: half}}\n", "maxDeletePercent"},
	} {
		t.Run(name, func(t *testing.T) { parseErr(t, tc.doc, nil, tc.want) })
	}
}
