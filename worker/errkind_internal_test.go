package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// kindTestConfig is a worker over NATS n, HTTP off, with sources.
func kindTestConfig(t *testing.T, n *testkit.NATS, catalogPath string, sources ...config.Source) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL, cfg.Catalog.Path, cfg.HTTP.Listen, cfg.Sources = n.URL, catalogPath, "off", sources
	return cfg
}

// A scan of a missing bucket says so: /status's lastError has kind
// bucket_not_found, and syncer_scan_errors_total counts it by kind.
func TestStatusNamesTheErrorKind(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	srv := testkit.StartS3(t, nil)
	cfg := kindTestConfig(t, n, t.TempDir(), srv.SourceConfig("m", "no-such-bucket"))
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Scan(context.Background(), "m"); !errors.Is(err, providers.ErrBucketNotFound) {
		t.Fatalf("scan: %v, want bucket not found", err)
	}
	st, err := w.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	le := st.Sources[0].LastError
	if le == nil || le.Kind != providers.KindBucketNotFound || le.Error == "" || le.At.IsZero() {
		t.Fatalf("lastError = %+v, want kind bucket_not_found", le)
	}
	b, err := json.Marshal(st.Sources[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"lastError":{"kind":"bucket_not_found"`) || !strings.Contains(string(b), `"restingUntil":null`) {
		t.Errorf("status JSON lacks the error kind: %s", b)
	}
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "syncer_scan_errors_total" && strings.Contains(m.String(), `value:"bucket_not_found"`) {
				got = m.GetCounter().GetValue()
			}
		}
	}
	if got != 1 {
		t.Errorf("syncer_scan_errors_total{kind=bucket_not_found} = %v, want 1", got)
	}
}

// A source whose catalog records another key order than its kind lists in
// does not open: the error names the source and both orders, and nothing
// is laid out anew.
func TestOpenRefusesAnotherKeyOrder(t *testing.T) {
	dir := t.TempDir()
	cat, err := catalog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Source("loc", providers.UTF16Order).CheckOrder(context.Background()); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := kindTestConfig(t, n, dir, config.Source{ID: "loc", Provider: "local", Path: t.TempDir(), Schedule: "@every 1h"})
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, catalog.ErrOrderMismatch) || w != nil {
		t.Fatalf("New: %v, want ErrOrderMismatch", err)
	}
	for _, want := range []string{"source loc", "stored in utf16 order", "configured for byte order"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A Source built in code is checked by its kind when the worker opens it:
// an unknown kind lists the known ones, a kind's missing field is named.
func TestOpenChecksTheKind(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	for src, want := range map[*config.Source]string{
		{ID: "f", Provider: "ftp", Schedule: "@every 1h"}: `sources[0].provider: "ftp" is not one of s3, gcs, azure, local`,
		{ID: "b", Provider: "s3", Schedule: "@every 1h"}:  "sources[0].bucket: is required for provider s3",
	} {
		cfg := kindTestConfig(t, n, t.TempDir(), *src)
		w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || w != nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with %+v: %v, want %q", *src, err, want)
		}
	}
}
