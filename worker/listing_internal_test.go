package worker

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
)

// A process that applies notifications probes the store before it lists in
// ranges, so that a first import leaves the CPU to the notifications'
// commits; one without notifications, or a source that set its
// listConcurrency, lists in ranges from the start.
func TestProbeListingOnlyWhereNotificationsApply(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	s3.CreateBucket(t, "probe")
	n := testkit.StartNATS(t, t.TempDir(), 0)
	newWorker := func(srcs ...config.Source) *Worker {
		t.Helper()
		cfg, err := config.Parse([]byte("nats: {url: embedded}\n"), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		cfg.NATS.URL, cfg.Catalog.Path, cfg.HTTP.Listen = n.URL, t.TempDir(), "127.0.0.1:0"
		cfg.Sources = srcs
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		w, err := New(context.Background(), cfg, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}
	hooked := s3.SourceConfig("hooked", "probe")
	hooked.Notifications.Webhook = &config.Webhook{Token: "t0ken-for-the-test"}
	pinned := s3.SourceConfig("pinned", "probe")
	pinned.ListConcurrency = 8
	plain := s3.SourceConfig("plain", "probe")

	w := newWorker(hooked, pinned, plain)
	for _, c := range []struct {
		src  config.Source
		want bool
	}{{hooked, true}, {plain, true}, {pinned, false}} {
		if got := w.probeListing(c.src); got != c.want {
			t.Errorf("with a webhook in the process: probeListing(%s) = %v, want %v", c.src.ID, got, c.want)
		}
	}
	// The probe decides between one sequence and ranges: it needs ranges to
	// switch to.
	if got := w.listConcurrency(plain); got <= 1 {
		t.Errorf("plain S3 source: listConcurrency %d, want the automatic ranges (> 1) behind the probe", got)
	}

	quiet := newWorker(plain)
	if quiet.probeListing(plain) {
		t.Error("a process without notifications probes; it should list in ranges from the start")
	}
}
