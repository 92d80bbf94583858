package config

import (
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/providers/kinds"
	"github.com/imgly/syncer/providers/local"
)

// The tests parse as syncer's commands do: with every provider kind.
func parseAll(data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return ParseFor(data, lookup, kinds.All())
}

func loadAll(path string) (*Config, error) { return LoadFor(path, kinds.All()) }

// settleOf is the settle time the local kind decodes for a source.
func settleOf(t *testing.T, s *Source) time.Duration {
	t.Helper()
	_, got, err := s.Configure(kinds.All(), "sources[?]")
	if err != nil {
		t.Fatal(err)
	}
	return got.Settings.(local.Config).SettleTime()
}

func TestUnknownKindListsTheKnown(t *testing.T) {
	_, err := parseAll([]byte("nats: {url: embedded}\nsources:\n  - {id: a, provider: ftp, bucket: b}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), `sources[0].provider: "ftp" is not one of s3, gcs, azure, local`) {
		t.Fatalf("err = %v, want the known kinds listed", err)
	}
	_, err = parseAll([]byte("nats: {url: embedded}\nsources:\n  - {id: a, bucket: b}\n"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "sources[0].provider: is required (s3, gcs, azure or local)") {
		t.Fatalf("err = %v, want provider required", err)
	}
}

func TestKindErrorsNameTheLine(t *testing.T) {
	doc := "nats: {url: embedded}\nsources:\n  - id: a\n    provider: s3\n    bucket: b\n    s3:\n      endpoint: ftp://h\n"
	_, err := parseAll([]byte(doc), env(nil))
	if err == nil || !strings.Contains(err.Error(), "sources[0].s3.endpoint: ") || !strings.Contains(err.Error(), "(line 7)") {
		t.Fatalf("err = %v, want the field and its line", err)
	}
}

func TestKindDefaultsAndForeignKeys(t *testing.T) {
	cfg, err := parseAll([]byte("nats: {url: embedded}\nsources:\n  - {id: a, provider: s3, bucket: b}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sources[0].S3.Region != "us-east-1" || cfg.Sources[0].Assets.URI != AssetURIPresign {
		t.Errorf("s3 defaults: region %q uri %q", cfg.Sources[0].S3.Region, cfg.Sources[0].Assets.URI)
	}
	for doc, want := range map[string]string{
		"{id: a, provider: gcs, bucket: b, container: c}":                                                             `sources[0].container: applies to provider azure, not "gcs"`,
		"{id: a, provider: local, path: ., s3: {region: x}}":                                                          `sources[0].s3: applies to provider s3, not "local"`,
		"{id: a, provider: azure, container: c, bucket: b, azure: {accountURL: \"https://a.blob.core.windows.net\"}}": `sources[0].bucket: applies to provider s3 or gcs, not "azure"`,
	} {
		_, err := parseAll([]byte("nats: {url: embedded}\nsources:\n  - "+doc+"\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", doc, err, want)
		}
	}
}
