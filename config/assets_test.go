package config

import (
	"strings"
	"testing"
	"time"
)

func TestAssetsConfig(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	cfg, err := parseAll([]byte(`
nats: {url: embedded}
http: {publicURL: "https://syncer.example.com", cors: {allowedOrigins: ["https://a.example", "*"]}}
sources:
  - {id: l, provider: local, path: ./x}
  - {id: s, provider: s3, bucket: b}
  - {id: c, provider: s3, bucket: b, assets: {publicBaseURL: "https://cdn.example"}}
  - {id: t, provider: s3, bucket: b, assets: {ttl: 10m, thumbnailURL: "https://img.example/{width}/{url}"}}
`), env)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{AssetURIServe, AssetURIPresign, AssetURIPublic, AssetURIPresign} {
		if got := cfg.Sources[i].Assets.URI; got != want {
			t.Errorf("sources[%d].assets.uri = %q, want %q", i, got, want)
		}
	}
	if cfg.Sources[0].Assets.TTL != DefaultAssetTTL || cfg.Sources[3].Assets.TTL != 10*time.Minute {
		t.Errorf("ttl defaults: %v %v", cfg.Sources[0].Assets.TTL, cfg.Sources[3].Assets.TTL)
	}
	for _, c := range []struct{ yaml, want string }{
		{`{id: l, provider: local, path: ./x, assets: {uri: presign}}`, "sources[0].assets.uri"},
		{`{id: s, provider: s3, bucket: b, assets: {uri: serve}}`, "sources[0].assets.uri"},
		{`{id: s, provider: s3, bucket: b, assets: {uri: public}}`, "sources[0].assets.publicBaseURL: is required"},
		{`{id: s, provider: s3, bucket: b, assets: {uri: cdn}}`, `"cdn" is not one of`},
		{`{id: s, provider: s3, bucket: b, assets: {ttl: 200h}}`, "sources[0].assets.ttl"},
		{`{id: s, provider: s3, bucket: b, assets: {thumbnailURL: "https://x/{height}"}}`, "sources[0].assets.thumbnailURL: has an unknown placeholder"},
		{`{id: s, provider: s3, bucket: b, assets: {publicBaseURL: "cdn.example"}}`, "sources[0].assets.publicBaseURL"},
		{`{id: s, provider: s3, bucket: b, assets: {credits: {url: "https://x"}}}`, "sources[0].assets.credits.name: is required"},
		{`{id: s, provider: s3, bucket: b, assets: {tokens: [""]}}`, "sources[0].assets.tokens[0]"},
		{`{id: s, provider: s3, bucket: b, assets: {colour: red}}`, "colour"},
	} {
		_, err := parseAll([]byte("nats: {url: embedded}\nsources:\n  - "+c.yaml+"\n"), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.yaml, err, c.want)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{`http: {publicURL: "syncer.example"}`, "http.publicURL"},
		{`http: {cors: {allowedOrigins: ["https://a.example/path"]}}`, "http.cors.allowedOrigins[0]"},
		{`http: {cors: {allowedOrigins: ["a.example"]}}`, "http.cors.allowedOrigins[0]"},
	} {
		_, err := parseAll([]byte("nats: {url: embedded}\n"+c.yaml+"\n"), env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.yaml, err, c.want)
		}
	}
}
