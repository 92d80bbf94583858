package schedule_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/schedule"
)

// bucket is a provider over a sorted key set that can start a listing after
// a key (a providers.StartAfterLister), with a hook to interrupt a listing.
type bucket struct {
	keys     []string // sorted
	pageSize int
	listed   atomic.Int64 // keys handed out
	calls    atomic.Int64
	// onCall, if set, runs before each page with the call's number (1..).
	onCall func(n int64) error
}

func newBucket(keys ...string) *bucket {
	slices.Sort(keys)
	return &bucket{keys: keys, pageSize: 7}
}

func (b *bucket) page(ctx context.Context, prefix, after string) (providers.Page, error) {
	if b.onCall != nil {
		if err := b.onCall(b.calls.Add(1)); err != nil {
			return providers.Page{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return providers.Page{}, err
	}
	var pg providers.Page
	for _, k := range b.keys {
		if k <= after || !strings.HasPrefix(k, prefix) {
			continue
		}
		if len(pg.Objects) == b.pageSize {
			pg.Next = pg.Objects[len(pg.Objects)-1].Key
			break
		}
		pg.Objects = append(pg.Objects, providers.Object{Key: k, Size: 1, ETag: "e-" + k})
	}
	b.listed.Add(int64(len(pg.Objects)))
	return pg, nil
}

func (b *bucket) ListPage(ctx context.Context, prefix, token string) (providers.Page, error) {
	return b.page(ctx, prefix, token)
}
func (b *bucket) ListPageAfter(ctx context.Context, prefix, after string) (providers.Page, error) {
	return b.page(ctx, prefix, after)
}
func (b *bucket) Stat(context.Context, string) (providers.Object, error) {
	return providers.Object{}, providers.ErrNotFound
}
func (b *bucket) Order() providers.Order { return providers.ByteOrder }
func (b *bucket) Close() error           { return nil }

func nkeys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

func scanGuarded(t *testing.T, cs schedule.Catalog, p providers.Provider, prefix string, g *schedule.Guard, allow bool) (schedule.Result, error) {
	t.Helper()
	return schedule.Reconcile(context.Background(), schedule.Target{
		ID: "s", Provider: p, Filter: providers.Filter{Prefix: prefix}, Catalog: cs, Guard: g,
	}, schedule.Options{BatchSize: 50, SpillDir: t.TempDir(), AllowMassDelete: allow})
}

func objects(t *testing.T, cs *catalog.Source) int {
	t.Helper()
	st, err := cs.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Objects)
}

// A scan deleting more than the guard allows (by percent, by count) applies
// its additions, not its deletions; one within the limits applies both.
func TestGuardHoldsMassDeletion(t *testing.T) {
	half := &schedule.Guard{MaxDeletePercent: 50}
	for _, tc := range []struct {
		name   string
		guard  *schedule.Guard
		keep   int // of 1000
		held   bool
		inMsg  string
		allow  bool
		wantOf int
	}{
		{name: "90% > 50%", guard: half, keep: 100, held: true, inMsg: "held: would delete 900 of 1000 (90% > 50%); release with syncer scan --allow-mass-delete"},
		{name: "50% is not more than 50%", guard: half, keep: 500},
		{name: "40% < 50%", guard: half, keep: 600},
		{name: "11 > maxDeletes 10", guard: &schedule.Guard{MaxDeletePercent: 100, MaxDeletes: 10}, keep: 989, held: true, inMsg: "would delete 11 of 1000 (11 > maxDeletes 10)"},
		{name: "10 = maxDeletes 10", guard: &schedule.Guard{MaxDeletePercent: 100, MaxDeletes: 10}, keep: 990},
		{name: "0% holds any deletion", guard: &schedule.Guard{}, keep: 999, held: true, inMsg: "(0.1% > 0%)"},
		{name: "released", guard: half, keep: 100, allow: true},
		{name: "no guard", keep: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := openSource(t, providers.ByteOrder)
			all := nkeys("k", 1000)
			if _, err := scanGuarded(t, cs, newBucket(all...), "", tc.guard, false); err != nil {
				t.Fatal(err)
			}
			// Keep some, and add 3 new ones in the same scan.
			next := append(slices.Clone(all[:tc.keep]), "new1", "new2", "new3")
			res, err := scanGuarded(t, cs, newBucket(next...), "", tc.guard, tc.allow)
			if err != nil {
				t.Fatal(err)
			}
			if res.Added != 3 {
				t.Errorf("added %d, want 3: a held scan still applies its additions", res.Added)
			}
			if (res.Held != nil) != tc.held {
				t.Fatalf("held = %v, want %v (%+v)", res.Held, tc.held, res)
			}
			if tc.held {
				if res.Deleted != 0 || objects(t, cs) != 1003 {
					t.Errorf("held scan deleted %d; catalog has %d, want 1003", res.Deleted, objects(t, cs))
				}
				if res.Held.WouldDelete != 1000-tc.keep || res.Held.Of != 1000 {
					t.Errorf("held %+v, want %d of 1000", res.Held, 1000-tc.keep)
				}
				if !strings.Contains(res.Held.Error(), tc.inMsg) {
					t.Errorf("message %q does not contain %q", res.Held.Error(), tc.inMsg)
				}
				return
			}
			if res.Deleted != 1000-tc.keep || objects(t, cs) != tc.keep+3 {
				t.Errorf("deleted %d, catalog %d; want %d, %d", res.Deleted, objects(t, cs), 1000-tc.keep, tc.keep+3)
			}
		})
	}
}

// An empty listing of a non-empty source is held even when the percentage
// allows everything; released, it deletes.
func TestGuardHoldsEmptyListing(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	g := &schedule.Guard{MaxDeletePercent: 100}
	if _, err := scanGuarded(t, cs, newBucket(nkeys("k", 20)...), "", g, false); err != nil {
		t.Fatal(err)
	}
	res, err := scanGuarded(t, cs, newBucket(), "", g, false)
	if err != nil || res.Held == nil || !res.Held.Empty || objects(t, cs) != 20 {
		t.Fatalf("empty listing: %+v %v, catalog %d; want held, 20 kept", res, err, objects(t, cs))
	}
	if msg := res.Held.Error(); !strings.Contains(msg, "listing is empty") || !strings.Contains(msg, "20 of 20") {
		t.Errorf("message %q", msg)
	}
	res, err = scanGuarded(t, cs, newBucket(), "", g, true)
	if err != nil || res.Held != nil || res.Deleted != 20 || objects(t, cs) != 0 {
		t.Fatalf("released: %+v %v, catalog %d", res, err, objects(t, cs))
	}
	// An empty source scanned empty holds nothing.
	if res, err = scanGuarded(t, cs, newBucket(), "", g, false); err != nil || res.Held != nil {
		t.Fatalf("empty again: %+v %v", res, err)
	}
}

// A prefix edited from lib/ to lib/d0/ would delete the other nine tenths.
func TestGuardHoldsPrefixEdit(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	var all []string
	for d := range 10 {
		all = append(all, nkeys(fmt.Sprintf("lib/d%d/", d), 10)...)
	}
	b := newBucket(all...)
	g := &schedule.Guard{MaxDeletePercent: 50}
	if _, err := scanGuarded(t, cs, b, "lib/", g, false); err != nil {
		t.Fatal(err)
	}
	res, err := scanGuarded(t, cs, b, "lib/d0/", g, false)
	if err != nil || res.Held == nil || res.Held.WouldDelete != 90 || objects(t, cs) != 100 {
		t.Fatalf("prefix edit: %+v %v, catalog %d", res, err, objects(t, cs))
	}
}

// The scheduler shows a held scan: result held with the message, the gauge
// at 1; a later scan within the guard (here a release) clears both.
func TestSchedulerHeld(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	b := newBucket(nkeys("k", 10)...)
	reg := prometheus.NewRegistry()
	s, err := schedule.NewScheduler([]schedule.Job{{Spec: "@every 1h", Target: schedule.Target{
		ID: "s", Provider: b, Catalog: cs, Guard: &schedule.Guard{MaxDeletePercent: 50},
	}}}, schedule.Options{SpillDir: t.TempDir()}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	gauge := func() float64 {
		t.Helper()
		n, err := testutil.GatherAndCount(reg, "syncer_source_guard_held")
		if err != nil || n != 1 {
			t.Fatalf("guard series: %d %v", n, err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "syncer_source_guard_held" {
				return mf.Metric[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	if v := gauge(); v != 0 {
		t.Fatalf("gauge before any scan %v, want 0", v)
	}
	if _, err := s.Scan(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	b.keys = b.keys[:2]
	res, err := s.Scan(context.Background(), "s")
	if err != nil || res.Held == nil {
		t.Fatalf("%+v %v, want held", res, err)
	}
	st, _ := s.Status("s")
	if st.Last.Result != schedule.ResultHeld || st.Last.Err == nil || !strings.Contains(st.Last.Err.Error(), "would delete 8 of 10 (80% > 50%)") {
		t.Fatalf("status %+v", st.Last)
	}
	if v := gauge(); v != 1 {
		t.Fatalf("gauge after a held scan %v, want 1", v)
	}
	if res, err := s.ScanWith(context.Background(), "s", schedule.ScanOptions{AllowMassDelete: true}); err != nil || res.Deleted != 8 {
		t.Fatalf("release: %+v %v", res, err)
	}
	st, _ = s.Status("s")
	if st.Last.Result != schedule.ResultOK || st.Last.Err != nil || gauge() != 0 {
		t.Fatalf("after release: %+v, gauge %v", st.Last, gauge())
	}
	// The guard is lifted for that one scan only.
	b.keys = b.keys[:0]
	if res, err := s.Scan(context.Background(), "s"); err != nil || res.Held == nil {
		t.Fatalf("after release, an empty listing: %+v %v, want held", res, err)
	}
	if _, err := s.ScanWith(context.Background(), "nope", schedule.ScanOptions{}); !errors.Is(err, schedule.ErrNoSource) {
		t.Fatalf("unknown source: %v", err)
	}
}

// failingCommits is the catalog with a disk that filled up: commits fail
// with ENOSPC from the failAt'th on.
type failingCommits struct {
	*catalog.Source
	n, failAt int
}

func (f *failingCommits) Commit(ctx context.Context, muts []catalog.Mutation) ([]catalog.Change, error) {
	if f.n++; f.n >= f.failAt {
		return nil, fmt.Errorf("catalog: commit s: %w", syscall.ENOSPC)
	}
	return f.Source.Commit(ctx, muts)
}

// After a commit fails with ENOSPC the scan reports that, not only that
// "an earlier commit failed".
func TestReconcileReportsCommitCause(t *testing.T) {
	cs := &failingCommits{Source: openSource(t, providers.ByteOrder), failAt: 2}
	b := newBucket(nkeys("k", 200)...)
	b.pageSize = 10
	_, err := schedule.Reconcile(context.Background(), schedule.Target{ID: "s", Provider: b, Catalog: cs},
		schedule.Options{BatchSize: 10})
	if err == nil {
		t.Fatal("scan succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("error %q does not carry the cause", err)
	}
}

// A first scan killed twice part-way resumes after what it committed and
// completes with each object announced exactly once.
func TestFirstScanResumes(t *testing.T) {
	const n = 200
	cs := openSource(t, providers.ByteOrder)
	b := newBucket(nkeys("k", n)...)
	scan := func(killAt int64) (schedule.Result, error) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.calls.Store(0)
		b.listed.Store(0)
		b.onCall = func(c int64) error {
			if killAt > 0 && c == killAt {
				cancel() // killed while listing
				return ctx.Err()
			}
			return nil
		}
		return schedule.Reconcile(ctx, schedule.Target{ID: "s", Provider: b, Catalog: cs, Guard: &schedule.Guard{MaxDeletePercent: 50}},
			schedule.Options{BatchSize: 10, SpillDir: t.TempDir()})
	}
	var listed []int64
	for i, kill := range []int64{8, 10} {
		res, err := scan(kill)
		if err == nil {
			t.Fatalf("killed scan %d succeeded", i)
		}
		if res.Deleted != 0 {
			t.Fatalf("killed scan %d deleted %d", i, res.Deleted)
		}
		listed = append(listed, b.listed.Load())
		if i == 1 && res.ResumedAfter == "" {
			t.Errorf("second attempt did not resume")
		}
	}
	res, err := scan(0)
	if err != nil {
		t.Fatal(err)
	}
	listed = append(listed, b.listed.Load())
	if res.ResumedAfter == "" || res.Deleted != 0 {
		t.Errorf("final attempt %+v: want resumed, no deletions", res)
	}
	for i, l := range listed[1:] {
		if l >= n {
			t.Errorf("resumed attempt %d listed %d keys, want fewer than %d", i+2, l, n)
		}
	}
	t.Logf("keys listed per attempt: %v", listed)
	changes, err := cs.Outbox(context.Background(), 1, 10*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != n {
		t.Fatalf("%d changes, want %d", len(changes), n)
	}
	seen := map[string]bool{}
	for i, c := range changes {
		if c.Seq != uint64(i+1) || c.Op != catalog.Added || seen[c.Object.Key] {
			t.Fatalf("change %d: seq %d %v %q (seen before: %v)", i, c.Seq, c.Op, c.Object.Key, seen[c.Object.Key])
		}
		seen[c.Object.Key] = true
	}
	ls, err := cs.ListingState(context.Background())
	if err != nil || !ls.Complete || ls.InProgress {
		t.Fatalf("listing state %+v %v, want complete", ls, err)
	}
	// Complete now: the next scan lists from the start and deletes.
	b.keys = b.keys[:n-5]
	res, err = scan(0)
	if err != nil || res.ResumedAfter != "" || res.Deleted != 5 || b.listed.Load() != n-5 {
		t.Fatalf("rescan %+v %v, listed %d", res, err, b.listed.Load())
	}
}

// A provider that cannot start after a key lists a first scan from the
// start again; nothing is doubled either way.
func TestFirstScanWithoutStartAfter(t *testing.T) {
	cs := openSource(t, providers.ByteOrder)
	var page []string
	for i := range 30 {
		page = append(page, "k"+strconv.Itoa(100+i))
	}
	l := &listing{fail: 2, pages: [][]string{page[:10], page[10:20], page[20:]}}
	if _, err := reconcile(t, cs, l, providers.Filter{}); err == nil {
		t.Fatal("failed listing succeeded")
	}
	l.fail = -1
	res, err := reconcile(t, cs, l, providers.Filter{})
	if err != nil || res.ResumedAfter != "" || res.Listed != 30 || res.Added != 10 {
		t.Fatalf("%+v %v", res, err)
	}
}
