package config

import (
	"testing"
	"time"
)

func TestRequestTimeoutAndFollowSymlinks(t *testing.T) {
	cfg := parse(t, `
sources:
  - {id: a, provider: s3, bucket: b, requestTimeout: 5s}
  - {id: l, provider: local, path: ., followSymlinks: true}
  - {id: d, provider: gcs, bucket: b}
`, nil)
	if got := cfg.Sources[0].RequestTimeout; got != 5*time.Second {
		t.Errorf("requestTimeout = %v", got)
	}
	if !cfg.Sources[1].FollowSymlinks || cfg.Sources[0].FollowSymlinks {
		t.Errorf("followSymlinks = %v, %v", cfg.Sources[0].FollowSymlinks, cfg.Sources[1].FollowSymlinks)
	}
	if got := cfg.Sources[2].RequestTimeout; got != 0 {
		t.Errorf("unset requestTimeout = %v, want 0 (the providers' default)", got)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"negative": {"sources:\n  - {id: a, provider: s3, bucket: b, requestTimeout: -1s}\n", "sources[0].requestTimeout"},
		"too long": {"sources:\n  - {id: a, provider: s3, bucket: b, requestTimeout: 2h}\n", "sources[0].requestTimeout"},
		"symlinks on s3": {"sources:\n  - {id: a, provider: s3, bucket: b, followSymlinks: true}\n",
			"sources[0].followSymlinks"},
	} {
		t.Run(name, func(t *testing.T) { parseErr(t, tc.doc, nil, tc.want) })
	}
}
