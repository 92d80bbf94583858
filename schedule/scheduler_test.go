package schedule_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/schedule"
)

// Status tells the last scan's result and the next run; the duration
// histogram is labelled by result, every result present from the start.
func TestSchedulerStatus(t *testing.T) {
	l := &listing{pages: [][]string{{"a", "b"}, {"c"}}, fail: -1, order: providers.ByteOrder}
	reg := prometheus.NewRegistry()
	s, err := schedule.NewScheduler([]schedule.Job{{Spec: "@every 1h", Target: schedule.Target{
		ID: "s", Provider: l, Catalog: openSource(t, providers.ByteOrder),
	}}}, schedule.Options{SpillDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "syncer_scan_duration_seconds"); err != nil || n != 4 {
		t.Fatalf("duration series before any scan: %d %v, want 4 (ok, held, failed, cancelled)", n, err)
	}
	st, ok := s.Status("s")
	if !ok || st.Last != nil || !st.LastSuccess.IsZero() {
		t.Fatalf("before a scan: %+v %v", st, ok)
	}
	if d := time.Until(st.Next); d < 59*time.Minute || d > time.Hour {
		t.Errorf("next in %v, want 1h", d)
	}
	if _, ok := s.Status("other"); ok {
		t.Error("unknown source has a status")
	}

	if _, err := s.Scan(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Status("s")
	if st.Last == nil || st.Last.Result != schedule.ResultOK || st.Last.Err != nil || st.Last.Listed != 3 || st.LastSuccess.IsZero() {
		t.Fatalf("after a scan: %+v", st.Last)
	}
	success := st.LastSuccess

	l.fail = 1
	if _, err := s.Scan(context.Background(), "s"); err == nil {
		t.Fatal("failing scan succeeded")
	}
	st, _ = s.Status("s")
	if st.Last.Result != schedule.ResultFailed || st.Last.Err == nil || !st.LastSuccess.Equal(success) {
		t.Fatalf("after a failed scan: %+v, last success %v (was %v)", st.Last, st.LastSuccess, success)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.fail = -1
	if _, err := s.Scan(ctx, "s"); err == nil {
		t.Fatal("cancelled scan succeeded")
	}
	if n := testutil.CollectAndCount(reg, "syncer_scan_duration_seconds"); n != 4 {
		t.Errorf("%d duration series", n)
	}
}
