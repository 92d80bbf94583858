package schedule_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
)

// metric reads one series of a counter family from reg (0 when absent).
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// s3Scheduler schedules one source "s" over bucket, its adapter reaching
// the store through a fault proxy, without the per-call throttle backoff:
// the first 503 fails the scan.
func s3Scheduler(t *testing.T, bucket string, create bool, rest retry.Policy, log *slog.Logger) (*schedule.Scheduler, *testkit.FaultProxy, *prometheus.Registry) {
	t.Helper()
	srv := testkit.StartS3(t, nil)
	if create {
		srv.CreateBucket(t, bucket)
	}
	proxy := testkit.StartFaultProxy(t, srv.URL, 1)
	cfg := s3.Config(srv.ProviderConfig(bucket))
	cfg.Endpoint = proxy.URL
	p, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := schedule.NewScheduler([]schedule.Job{{Spec: "@every 1h", Throttle: rest, Target: schedule.Target{
		ID: "s", Provider: p, Catalog: openSource(t, p.Order()),
	}}}, schedule.Options{SpillDir: t.TempDir()}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, proxy, reg
}

// A scan the store throttles sets the source resting: the scheduled scans
// until then are skipped (no request reaches the store), the failure is
// named throttled in the status and in syncer_scan_errors_total; a scan
// that gets through ends the rest.
func TestThrottledScanRestsTheSource(t *testing.T) {
	logged := make(chan string, 16)
	s, proxy, reg := s3Scheduler(t, "bkt", true, retry.Policy{Min: time.Hour, Max: time.Hour}, slog.New(&signalHandler{ch: logged}))
	proxy.Rate(1, nil, testkit.Status(503, "SlowDown"))
	if _, err := s.Scan(context.Background(), "s"); !errors.Is(err, providers.ErrThrottled) {
		t.Fatalf("scan: %v, want throttled", err)
	}
	st, _ := s.Status("s")
	if st.LastFailure == nil || st.LastFailure.Kind != providers.KindThrottled || st.Last.Kind != providers.KindThrottled {
		t.Fatalf("status after a throttled scan: %+v", st)
	}
	if d := time.Until(st.RestUntil); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("resting for %v, want the policy's hour", d)
	}
	if n := metric(t, reg, "syncer_scan_errors_total", map[string]string{"source": "s", "kind": "throttled"}); n != 1 {
		t.Errorf("syncer_scan_errors_total{kind=throttled} = %v, want 1", n)
	}
	if n, err := testutil.GatherAndCount(reg, "syncer_scan_errors_total"); err != nil || n != len(providers.KindNames()) {
		t.Errorf("error series: %d %v, want one per kind from the start", n, err)
	}

	// Run's start-up scan is a scheduled one: it rests.
	injected := proxy.Injected()
	for len(logged) > 0 {
		<-logged // the asked-for scan's
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	deadline := time.After(30 * time.Second)
	for rested := false; !rested; {
		select {
		case msg := <-logged:
			rested = strings.HasPrefix(msg, "scan skipped: the store throttled")
			if strings.HasPrefix(msg, "scan started") {
				t.Fatal("the start-up scan ran while the source rests")
			}
		case <-deadline:
			t.Fatal("the start-up scan did not rest")
		}
	}
	cancel()
	<-done
	if n := metric(t, reg, "syncer_scans_total", map[string]string{"source": "s", "result": "resting"}); n != 1 {
		t.Errorf("syncer_scans_total{result=resting} = %v, want 1", n)
	}
	if got := proxy.Injected(); got != injected {
		t.Errorf("a resting source made %d requests", got-injected)
	}

	// A scan asked for goes through; once the store answers, the rest ends.
	proxy.Clear()
	if _, err := s.Scan(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status("s"); st.LastFailure != nil || !st.RestUntil.IsZero() {
		t.Errorf("after a good scan: failure %+v, resting until %v", st.LastFailure, st.RestUntil)
	}
}

// A missing bucket fails the scan as bucket_not_found, and does not rest
// the source: the next scheduled scan tries again.
func TestMissingBucketNamedInScanResult(t *testing.T) {
	s, _, reg := s3Scheduler(t, "missing", false, retry.Policy{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.Scan(context.Background(), "s"); !errors.Is(err, providers.ErrBucketNotFound) {
		t.Fatalf("scan: %v, want bucket not found", err)
	}
	st, _ := s.Status("s")
	if st.LastFailure == nil || st.LastFailure.Kind != providers.KindBucketNotFound || !st.RestUntil.IsZero() {
		t.Fatalf("status: %+v, want bucket_not_found and no rest", st)
	}
	if n := metric(t, reg, "syncer_scan_errors_total", map[string]string{"source": "s", "kind": "bucket_not_found"}); n != 1 {
		t.Errorf("syncer_scan_errors_total{kind=bucket_not_found} = %v, want 1", n)
	}
}

// signalHandler sends each record's message on ch (dropping it when ch is
// full), so a test waits for what the scheduler logs instead of sleeping.
type signalHandler struct{ ch chan<- string }

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r.Message:
	default:
	}
	return nil
}
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }
