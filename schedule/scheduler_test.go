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

// stalled is a listing that blocks until released (or its context ends).
type stalled struct {
	listing
	entered chan struct{}
	release chan struct{}
}

func (s *stalled) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return providers.Page{}, ctx.Err()
	}
	return s.listing.ListPage(ctx, prefix, token)
}

// A scan in progress shows in Status from its start; once it has run longer
// than one interval of the schedule it is overdue.
func TestSchedulerOverdueScan(t *testing.T) {
	p := &stalled{listing: listing{pages: [][]string{{"a"}}, fail: -1, order: providers.ByteOrder},
		entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, err := schedule.NewScheduler([]schedule.Job{{Spec: "@every 1s", Target: schedule.Target{
		ID: "s", Provider: p, Catalog: openSource(t, providers.ByteOrder),
	}}}, schedule.Options{SpillDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Scan(context.Background(), "s"); done <- err }()
	<-p.entered
	st, _ := s.Status("s")
	if st.RunningSince.IsZero() || st.Overdue {
		t.Fatalf("scan just started: %+v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !st.Overdue {
		if time.Now().After(deadline) {
			t.Fatalf("a scan running for %v of a 1s schedule is not overdue", time.Since(st.RunningSince))
		}
		time.Sleep(50 * time.Millisecond) // polling the state with a deadline
		st, _ = s.Status("s")
	}
	close(p.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ = s.Status("s"); !st.RunningSince.IsZero() || st.Overdue {
		t.Fatalf("after the scan: %+v", st)
	}
}
