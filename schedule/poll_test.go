package schedule_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/local"
	"github.com/imgly/syncer/schedule"
)

// observed is a real provider whose listings say when each scan's first
// page is asked for and, while gated, wait: a scan slower than its interval.
type observed struct {
	providers.Provider
	listed   chan time.Time // a scan's first page was asked for
	gate     atomic.Pointer[chan struct{}]
	inFlight atomic.Int32
	maxIn    atomic.Int32
}

func (o *observed) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	n := o.inFlight.Add(1)
	defer o.inFlight.Add(-1)
	for m := o.maxIn.Load(); n > m && !o.maxIn.CompareAndSwap(m, n); m = o.maxIn.Load() {
	}
	if token == "" {
		select {
		case o.listed <- time.Now():
		default: // nobody counts these listings now
		}
	}
	if g := o.gate.Load(); g != nil {
		select {
		case <-*g:
		case <-ctx.Done():
			return providers.Page{}, ctx.Err()
		}
	}
	return o.Provider.ListPage(ctx, prefix, token)
}

// logged hands each log record to a channel (dropped when it is full).
type logged chan slog.Record

func (l logged) Enabled(context.Context, slog.Level) bool { return true }
func (l logged) Handle(_ context.Context, r slog.Record) error {
	select {
	case l <- r:
	default:
	}
	return nil
}
func (l logged) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logged) WithGroup(string) slog.Handler      { return l }

// pollSetup is a local source with one file, scheduled at spec and running.
type pollSetup struct {
	root string
	p    *observed
	cs   *catalog.Source
	s    *schedule.Scheduler
	reg  *prometheus.Registry
	logs logged
}

func startPoll(t *testing.T, spec string, gated bool) *pollSetup {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	lp, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ps := &pollSetup{root: root, p: &observed{Provider: lp, listed: make(chan time.Time, 64)},
		reg: prometheus.NewRegistry(), logs: make(logged, 4096)}
	if gated {
		g := make(chan struct{})
		ps.p.gate.Store(&g)
	}
	ps.cs = openSource(t, lp.Order())
	ps.s, err = schedule.NewScheduler([]schedule.Job{{Spec: spec, Target: schedule.Target{
		ID: "s", Provider: ps.p, Catalog: ps.cs,
	}}}, schedule.Options{SpillDir: t.TempDir()}, slog.New(ps.logs), ps.reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ps.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		lp.Close()
	})
	return ps
}

// committed waits until the catalog holds key, woken by each commit.
func (ps *pollSetup) committed(t *testing.T, key string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if _, ok, err := ps.cs.Get(context.Background(), key); err != nil {
			t.Fatal(err)
		} else if ok {
			return time.Since(start)
		}
		select {
		case <-ps.cs.Wait():
		case <-deadline.C:
			t.Fatalf("%s not in the catalog %v after it was written", key, within)
		}
	}
}

// A 200 ms schedule is honoured exactly — robfig/cron's own "@every" would
// round it up to a second — so a new file is found by the next tick, well
// under a second after it was written; scans that change nothing log at
// debug, so a short schedule does not flood the log.
func TestSchedulerSubSecondFindsChange(t *testing.T) {
	const interval = 200 * time.Millisecond
	ps := startPoll(t, "@every 200ms", false)
	ps.committed(t, "a.txt", 10*time.Second) // the scan at start

	// Interval: the time between the starts of consecutive scans.
	drain(ps.p.listed)
	var starts []time.Time
	timeout := time.After(10 * time.Second)
	for len(starts) < 7 {
		select {
		case at := <-ps.p.listed:
			starts = append(starts, at)
		case <-timeout:
			t.Fatalf("%d scans in 10 s on a 200 ms schedule", len(starts))
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]))
	}
	t.Logf("gaps between scans: %v", gaps)
	// A listing starts a little after its tick, later on a loaded machine,
	// so one gap may be short and the next long; the mean is the interval.
	if mean := starts[len(starts)-1].Sub(starts[0]) / time.Duration(len(gaps)); mean < interval*3/4 {
		t.Errorf("scans %v apart on average on a %v schedule: ticks come too often", mean, interval)
	}
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2]; med > 2*interval {
		t.Errorf("median gap between scans %v on a %v schedule", med, interval)
	}
	if st, _ := ps.s.Status("s"); time.Until(st.Next) > interval {
		t.Errorf("status: next scan in %v on a %v schedule", time.Until(st.Next), interval)
	}

	// Changes: each one is found by the next tick.
	var waits []time.Duration
	for i := range 5 {
		key := fmt.Sprintf("new-%d.txt", i)
		if err := os.WriteFile(filepath.Join(ps.root, key), []byte(key), 0o644); err != nil {
			t.Fatal(err)
		}
		waits = append(waits, ps.committed(t, key, 750*time.Millisecond))
	}
	t.Logf("write → catalog: %v", waits)

	// Log: info only for the scans that changed something.
	info, debug := 0, 0
	for _, r := range drain(ps.logs) {
		if r.Message != "scan done" {
			continue
		}
		if r.Level >= slog.LevelInfo {
			info++
		} else {
			debug++
		}
	}
	if info > 6 || debug == 0 {
		t.Errorf("scan done: %d at info (want at most 6: the first scan and 5 changes), %d at debug", info, debug)
	}
}

// drain empties ch and returns what it held.
func drain[T any](ch chan T) []T {
	var out []T
	for {
		select {
		case v := <-ch:
			out = append(out, v)
		default:
			return out
		}
	}
}

// A scan slower than its sub-second interval is not joined by another: the
// ticks while it runs are skipped (counted, one warning per slow scan),
// it shows as overdue, and the schedule goes on once it ends.
func TestSchedulerSlowScanSkipsTicks(t *testing.T) {
	ps := startPoll(t, "@every 100ms", true)
	<-ps.p.listed // the scan at start is listing, and held there

	var skips []slog.Record
	timeout := time.After(10 * time.Second)
	for len(skips) < 4 {
		select {
		case r := <-ps.logs:
			if r.Message == "scan skipped: the previous one is still running" {
				skips = append(skips, r)
			}
		case <-timeout:
			t.Fatalf("%d skipped ticks in 10 s while a scan held a 100 ms schedule", len(skips))
		}
	}
	if n := ps.p.maxIn.Load(); n != 1 {
		t.Errorf("%d listings at once; scans of a source must not overlap", n)
	}
	for i, r := range skips {
		if want := map[bool]slog.Level{true: slog.LevelWarn, false: slog.LevelDebug}[i == 0]; r.Level != want {
			t.Errorf("skip %d logged at %v, want %v (one warning per slow scan)", i, r.Level, want)
		}
	}
	if n := scans(t, ps.reg, "skipped"); n < float64(len(skips)) {
		t.Errorf("syncer_scans_total{result=skipped} = %v after %d skipped ticks", n, len(skips))
	}
	if st, _ := ps.s.Status("s"); !st.Overdue || st.RunningSince.IsZero() {
		t.Errorf("a scan held over 4 ticks: status %+v, want running and overdue", st)
	}

	// Released, the scan ends and the next tick scans again.
	drain(ps.p.listed)
	g := ps.p.gate.Swap(nil)
	close(*g)
	ps.committed(t, "a.txt", 10*time.Second)
	select {
	case <-ps.p.listed:
	case <-time.After(10 * time.Second):
		t.Fatal("no scan after the slow one ended")
	}
	if n := ps.p.maxIn.Load(); n != 1 {
		t.Errorf("%d listings at once", n)
	}
}

// scans is syncer_scans_total{source="s",result=result}.
func scans(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "syncer_scans_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["source"] == "s" && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no syncer_scans_total{result=%q}", result)
	return 0
}
