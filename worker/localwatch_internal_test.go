package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers/local"
)

// A watch that lost events (overflow) or cannot watch everything (the
// watch limit) gets a scan of its source, counted by reason.
func TestLocalWatchFallbackScans(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.NATS.URL, cfg.Catalog.Path, cfg.HTTP.Listen = n.URL, t.TempDir(), "off"
	cfg.Sources = []config.Source{{ID: "loc", Provider: "local", Path: dir, Schedule: "@every 1h", Settle: new(time.Duration)}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lw := w.consumers["watch/loc"].(*localWatch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); lw.rescanLoop(ctx) }()
	defer func() { cancel(); <-done }()

	if err := os.WriteFile(filepath.Join(dir, "missed.jpg"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	lw.Rescan(local.RescanOverflow)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok, err := w.sources[0].Catalog.Get(ctx, "missed.jpg"); err != nil {
			t.Fatal(err)
		} else if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scan found the file within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	lw.Rescan(local.RescanWatchLimit)
	for reason, want := range map[string]float64{local.RescanOverflow: 1, local.RescanWatchLimit: 1} {
		if got := testutil.ToFloat64(w.watchFallbacks.WithLabelValues("loc", reason)); got != want {
			t.Errorf("fallbacks{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}
