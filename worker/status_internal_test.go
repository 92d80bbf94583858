package worker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://host:4222":                            "nats://host:4222",
		"nats://user:pass@host:4222":                  "nats://host:4222",
		"nats://token@host:4222":                      "nats://host:4222",
		"tls://a:b@h1:4222, nats://c:d@h2:4222":       "tls://h1:4222,nats://h2:4222",
		"user:p%40ss@host:4222":                       "host:4222",
		"nats://us%3Aer:p@ss@host:4222":               "nats://host:4222",
		"nats://127.0.0.1:4222,nats://x:y@[::1]:4223": "nats://127.0.0.1:4222,nats://[::1]:4223",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "example.com:80": false,
		"off": false, "8080": false,
	} {
		if got := isLoopback(listen); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", listen, got, want)
		}
	}
}

// The types marshal with the contract's names; lastScan, nextScanAt and
// lastMessageAt are null when unknown.
func TestStatusJSONNulls(t *testing.T) {
	b, err := json.Marshal(SourceStatus{ID: "a", Notifications: []StatusNotification{{Transport: "sqs", State: StateRunning}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"lastScan":null`, `"nextScanAt":null`, `"lastMessageAt":null`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}

// Readiness fails (503) when the catalog cannot be read, and says so in
// both forms.
func TestReadyzCatalogClosed(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.NATS.URL = n.URL
	cfg.Catalog.Path = t.TempDir()
	cfg.HTTP.Listen = "off"
	cfg.Sources = []config.Source{{ID: "loc", Provider: "local", Path: t.TempDir(), Schedule: "@every 1h"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := w.Handler()
	ready := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := ready("/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	code, body := ready("/readyz?verbose")
	if code != http.StatusOK || !strings.HasPrefix(body, "[+]catalog ok\n[+]http ok\n[+]nats ok (informational)\n") ||
		!strings.Contains(body, "[+]scan/loc not run yet (informational)\n") || !strings.HasSuffix(body, "readyz check passed\n") {
		t.Fatalf("/readyz?verbose: %d\n%s", code, body)
	}
	w.cat.Close()
	if code, body := ready("/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "[-]catalog ") ||
		!strings.HasSuffix(body, "readyz check failed\n") {
		t.Fatalf("/readyz with the catalog closed: %d %q", code, body)
	}
}
