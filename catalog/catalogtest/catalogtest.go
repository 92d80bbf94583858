// Package catalogtest is the conformance suite of catalog backends: every
// backend (bbolt, PostgreSQL) must pass Run, so that the rest of syncer can
// rely on the catalog's guarantees whichever one holds it.
package catalogtest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// Open returns a fresh, empty catalog; the suite closes it.
type Open func(t *testing.T) *catalog.Catalog

// Run runs every case, each on a fresh catalog from open.
func Run(t *testing.T, open Open) {
	cases := []struct {
		name string
		fn   func(*testing.T, *catalog.Catalog)
	}{
		{"SequenceWithoutGaps", testSequence},
		{"ConcurrentCommits", testConcurrent},
		{"ConcurrentCommitsOwnChanges", testConcurrentOwn},
		{"ChangeAndOutboxTogether", testOutboxRecord},
		{"SameKeyTwiceInOneCommit", testSameKeyTwice},
		{"EmptyKey", testEmptyKey},
		{"Guards", testGuards},
		{"Sequencer", testSequencer},
		{"ListedAt", testListedAt},
		{"RangeOrder", testRangeOrder},
		{"RangeUTF16", testRangeUTF16},
		{"OutboxAck", testOutboxAck},
		{"Wait", testWait},
		{"SourcesApart", testSourcesApart},
		{"ListingState", testListingState},
		{"View", testView},
		{"AssetWalk", testWalk},
		{"AssetMatch", testMatch},
		{"LongRanges", testLong},
		{"IndexToggle", testIndexToggle},
		{"KeyOrder", testKeyOrder},
		{"RangeAfter", testRangeAfter},
		{"Search", testSearch},
		{"AssetPage", testPage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat := open(t)
			t.Cleanup(func() { cat.Close() })
			c.fn(t, cat)
		})
	}
}

var t0 = time.Unix(1_700_000_000, 123456789).UTC()

// obj is an object whose ETag and size follow v.
func obj(key string, v int) providers.Object {
	return providers.Object{Key: key, ETag: fmt.Sprintf("e%d", v), Size: int64(v), LastModified: t0.Add(time.Duration(v) * time.Second),
		Version: "", ContentType: "image/png"}
}

func scan(o providers.Object) catalog.Mutation {
	return catalog.Mutation{Object: o, Origin: catalog.Scan}
}

func del(key string) catalog.Mutation {
	return catalog.Mutation{Object: providers.Object{Key: key}, Delete: true, Origin: catalog.Scan}
}

func commit(t *testing.T, s *catalog.Source, muts ...catalog.Mutation) []catalog.Change {
	t.Helper()
	ch, err := s.Commit(t.Context(), muts)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return ch
}

func ops(chs []catalog.Change) []string {
	var out []string
	for _, c := range chs {
		out = append(out, fmt.Sprintf("%d %s %s", c.Seq, c.Op, c.Object.Key))
	}
	return out
}

func want(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	if len(got)+len(want) <= 40 {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d, want %d; first difference at %d: got %q, want %q", what, len(got), len(want), i,
		got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
}

func keys(t *testing.T, s *catalog.Source, after string) []string {
	t.Helper()
	var out []string
	if err := s.Range(t.Context(), after, func(e catalog.Entry) error {
		out = append(out, e.Key)
		return nil
	}); err != nil {
		t.Fatalf("range after %q: %v", after, err)
	}
	return out
}

func outbox(t *testing.T, s *catalog.Source, from uint64, limit int) []catalog.Change {
	t.Helper()
	chs, err := s.Outbox(t.Context(), from, limit)
	if err != nil {
		t.Fatalf("outbox from %d: %v", from, err)
	}
	return chs
}

func lastSeq(t *testing.T, s *catalog.Source) uint64 {
	t.Helper()
	n, err := s.LastSeq(t.Context())
	if err != nil {
		t.Fatalf("last seq: %v", err)
	}
	return n
}

func stats(t *testing.T, s *catalog.Source) catalog.Stats {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st
}

// Every change gets the next number, no-ops take none, and counters follow.
func testSequence(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	if n := lastSeq(t, s); n != 0 {
		t.Fatalf("last seq of a new source %d", n)
	}
	want(t, "first", ops(commit(t, s, scan(obj("a", 1)), scan(obj("b", 1)), scan(obj("c", 1)))),
		[]string{"1 added a", "2 added b", "3 added c"})
	want(t, "no-op", ops(commit(t, s, scan(obj("a", 1)), del("zz"))), nil)
	want(t, "second", ops(commit(t, s, scan(obj("a", 2)), del("b"), scan(obj("c", 1)), scan(obj("d", 1)))),
		[]string{"4 modified a", "5 deleted b", "6 added d"})
	if n := lastSeq(t, s); n != 6 {
		t.Fatalf("last seq %d, want 6", n)
	}
	if st := stats(t, s); st != (catalog.Stats{Objects: 3, LastSeq: 6, Pending: 6}) {
		t.Fatalf("stats %+v", st)
	}
	e, ok, err := s.Get(t.Context(), "a")
	if err != nil || !ok || e.Seq != 4 || e.Object != obj("a", 2) {
		t.Fatalf("get a: %+v %v %v", e, ok, err)
	}
	if _, ok, err := s.Get(t.Context(), "b"); ok || err != nil {
		t.Fatalf("deleted b still there (%v)", err)
	}
}

// Commits racing on one source still number 1..n without a gap or a repeat.
func testConcurrent(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m := scan(obj(fmt.Sprintf("w%d-%d", w, i), 1))
				m.Origin = catalog.Notification
				if _, err := s.Commit(t.Context(), []catalog.Mutation{m}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	chs := outbox(t, s, 1, 1000)
	if len(chs) != workers*each {
		t.Fatalf("%d outbox records, want %d", len(chs), workers*each)
	}
	for i, ch := range chs {
		if ch.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, ch.Seq)
		}
	}
}

// Concurrent commits (a backend may run them in one transaction) each
// return the changes of their own mutations and only those; one that fails
// records nothing and fails no other; together they number without gaps.
func testConcurrentOwn(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	const workers, each = 8, 25
	commit(t, s, scan(obj("shared", 0)))
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[uint64]catalog.Change{}
	)
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if w == 0 && i%5 == 0 {
					// Fails on its empty key: nothing of it may land.
					if _, err := s.Commit(t.Context(), []catalog.Mutation{scan(obj(fmt.Sprintf("bad%d", i), 1)), scan(obj("", 1))}); err == nil {
						errs <- fmt.Errorf("commit with an empty key succeeded")
					}
					continue
				}
				mine := []catalog.Mutation{scan(obj(fmt.Sprintf("w%d-%d", w, i), 1)), scan(obj(fmt.Sprintf("w%d-%d", w, i), 2))}
				mine[0].Origin, mine[1].Origin = catalog.Notification, catalog.Notification
				chs, err := s.Commit(t.Context(), mine)
				if err != nil {
					errs <- err
					continue
				}
				key := mine[0].Object.Key
				if len(chs) != 2 || chs[0].Object.Key != key || chs[0].Op != catalog.Added ||
					chs[1].Object.Key != key || chs[1].Op != catalog.Modified || chs[1].Seq != chs[0].Seq+1 {
					errs <- fmt.Errorf("commit of %s returned %v, want its added and modified, numbered one after the other", key, ops(chs))
					continue
				}
				mu.Lock()
				for _, ch := range chs {
					if prev, dup := got[ch.Seq]; dup {
						errs <- fmt.Errorf("seq %d returned for %s and %s", ch.Seq, prev.Object.Key, ch.Object.Key)
					}
					got[ch.Seq] = ch
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	recs := outbox(t, s, 2, 10000)
	if len(recs) != len(got) {
		t.Fatalf("%d outbox records after seq 1, %d changes returned", len(recs), len(got))
	}
	for i, rec := range recs {
		if rec.Seq != uint64(i+2) {
			t.Fatalf("record %d has seq %d: a gap", i, rec.Seq)
		}
		if !sameChange(rec, got[rec.Seq]) {
			t.Fatalf("outbox record %+v, commit returned %+v", rec, got[rec.Seq])
		}
	}
	for _, k := range keys(t, s, "") {
		if strings.HasPrefix(k, "bad") {
			t.Fatalf("a failed commit left %q", k)
		}
	}
}

// The outbox holds exactly the committed changes, with the entry's state.
func testOutboxRecord(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	o := obj("a", 1)
	o.Version = "v1"
	got := commit(t, s, scan(o))
	got = append(got, commit(t, s, del("a"))...)
	rec := outbox(t, s, 1, 10)
	if len(rec) != 2 {
		t.Fatalf("outbox %v", ops(rec))
	}
	for i := range rec {
		if !sameChange(rec[i], got[i]) {
			t.Errorf("outbox record %+v, commit returned %+v", rec[i], got[i])
		}
	}
	if rec[1].Op != catalog.Deleted || rec[1].Object != o {
		t.Errorf("delete carries %+v, want the last known state %+v", rec[1].Object, o)
	}
	if rec[0].Origin != catalog.Scan || rec[0].At.IsZero() {
		t.Errorf("record %+v lacks origin or time", rec[0])
	}
}

func sameChange(a, b catalog.Change) bool {
	return a.Seq == b.Seq && a.Op == b.Op && a.Origin == b.Origin && a.Object == b.Object && a.At.Equal(b.At)
}

// Commits apply in order within one call, each seeing the one before.
func testSameKeyTwice(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	want(t, "twice", ops(commit(t, s, scan(obj("a", 1)), scan(obj("a", 2)), del("a"), scan(obj("a", 3)))),
		[]string{"1 added a", "2 modified a", "3 deleted a", "4 added a"})
	if st := stats(t, s); st.Objects != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A mutation without a key fails the whole commit and records nothing.
func testEmptyKey(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	if _, err := s.Commit(t.Context(), []catalog.Mutation{scan(obj("a", 1)), scan(obj("", 1))}); err == nil {
		t.Fatal("commit with an empty key succeeded")
	}
	if n := lastSeq(t, s); n != 0 {
		t.Fatalf("a failed commit left seq %d", n)
	}
	if k := keys(t, s, ""); len(k) != 0 {
		t.Fatalf("a failed commit left %q", k)
	}
}

// Guard and EventTime skip what the catalog has outdated.
func testGuards(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	commit(t, s, scan(obj("a", 1)))
	g := scan(obj("a", 2))
	g.Guard, g.IfSeq = true, 9
	want(t, "guard off", ops(commit(t, s, g)), nil)
	g.IfSeq = 1
	want(t, "guard on", ops(commit(t, s, g)), []string{"2 modified a"})
	absent := scan(obj("b", 1))
	absent.Guard, absent.IfSeq = true, 0
	want(t, "guard absent", ops(commit(t, s, absent)), []string{"3 added b"})
	stale := scan(obj("a", 3))
	stale.Origin, stale.EventTime = catalog.Notification, obj("a", 2).LastModified.Add(-time.Minute)
	want(t, "stale event", ops(commit(t, s, stale)), nil)
	stale.EventTime = obj("a", 3).LastModified
	want(t, "fresh event", ops(commit(t, s, stale)), []string{"4 modified a"})
}

func note(o providers.Object, seq string, delete bool) catalog.Mutation {
	return catalog.Mutation{Object: o, Origin: catalog.Notification, Sequencer: seq, Delete: delete}
}

// Sequencers order notifications per key; a delete wins a tie; the marker
// outlives the key.
func testSequencer(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	want(t, "first", ops(commit(t, s, note(obj("a", 1), "0005", false))), []string{"1 added a"})
	want(t, "older", ops(commit(t, s, note(obj("a", 2), "0004", false))), nil)
	want(t, "equal", ops(commit(t, s, note(obj("a", 2), "0005", false))), nil)
	want(t, "newer", ops(commit(t, s, note(obj("a", 2), "0006", false))), []string{"2 modified a"})
	want(t, "delete wins at equal", ops(commit(t, s, note(providers.Object{Key: "a"}, "0006", true))), []string{"3 deleted a"})
	want(t, "late create", ops(commit(t, s, note(obj("a", 3), "0006", false))), nil)
	want(t, "duplicate delete", ops(commit(t, s, note(providers.Object{Key: "a"}, "0006", true))), nil)
	want(t, "newer create", ops(commit(t, s, note(obj("a", 4), "0007", false))), []string{"4 added a"})
	// A delete of an absent key still records its sequencer.
	commit(t, s, note(providers.Object{Key: "b"}, "0009", true))
	want(t, "create before a recorded delete", ops(commit(t, s, note(obj("b", 1), "0008", false))), nil)
}

// A listing that began before a notification leaves the key alone.
func testListedAt(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	before := time.Now().Add(-time.Minute)
	want(t, "notified", ops(commit(t, s, note(obj("a", 1), "", false))), []string{"1 added a"})
	old := scan(obj("a", 2))
	old.ListedAt = before
	want(t, "older listing", ops(commit(t, s, old)), nil)
	gone := del("a")
	gone.ListedAt = before
	want(t, "older listing's delete", ops(commit(t, s, gone)), nil)
	old.ListedAt = time.Now().Add(time.Minute)
	want(t, "newer listing", ops(commit(t, s, old)), []string{"2 modified a"})
	never := scan(obj("b", 1))
	never.ListedAt = before
	want(t, "key never notified", ops(commit(t, s, never)), []string{"3 added b"})
}

// Range walks keys in byte order, strictly after its bound, and stops.
func testRangeOrder(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	ks := []string{"b", "a/b", "a", "a0", "a/", "é", "Z", "a b", "\U0001F600", "\uFF5E"}
	var muts []catalog.Mutation
	for _, k := range ks {
		muts = append(muts, scan(obj(k, 1)))
	}
	commit(t, s, muts...)
	sorted := slices.Clone(ks)
	slices.Sort(sorted)
	want(t, "all", keys(t, s, ""), sorted)
	want(t, "after a", keys(t, s, "a"), sorted[slices.Index(sorted, "a")+1:])
	want(t, "after an absent key", keys(t, s, "a1"), sorted[slices.Index(sorted, "b"):])
	want(t, "after the last", keys(t, s, sorted[len(sorted)-1]), nil)
	var n int
	if err := s.Range(t.Context(), "", func(catalog.Entry) error {
		if n++; n == 3 {
			return catalog.ErrStop
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("ErrStop: n=%d err=%v", n, err)
	}
	boom := errors.New("boom")
	if err := s.Range(t.Context(), "", func(catalog.Entry) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("range error %v, want boom", err)
	}
}

// A UTF16Order source keeps Azure's order: U+1F600 (a surrogate pair) before U+FF5E.
func testRangeUTF16(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.UTF16Order)
	ks := []string{"\U0001F600", "\uFF5E", "a", "\uE000"}
	var muts []catalog.Mutation
	for _, k := range ks {
		muts = append(muts, scan(obj(k, 1)))
	}
	commit(t, s, muts...)
	sorted := slices.Clone(ks)
	slices.SortFunc(sorted, providers.UTF16Order.Compare)
	want(t, "all", keys(t, s, ""), sorted)
	want(t, "after", keys(t, s, "\uE000"), sorted[slices.Index(sorted, "\uE000")+1:])
	if e, ok, err := s.Get(t.Context(), "\U0001F600"); err != nil || !ok || e.Key != "\U0001F600" {
		t.Fatalf("get: %+v %v %v", e, ok, err)
	}
}

// Outbox pages from a sequence number; Ack drops what was published.
func testOutboxAck(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	for i := range 5 {
		commit(t, s, scan(obj(fmt.Sprint(i), 1)))
	}
	want(t, "page", ops(outbox(t, s, 2, 2)), []string{"2 added 1", "3 added 2"})
	if err := s.Ack(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	want(t, "after ack", ops(outbox(t, s, 1, 10)), []string{"4 added 3", "5 added 4"})
	if st := stats(t, s); st.Pending != 2 || st.LastSeq != 5 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Ack(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	want(t, "all acked", ops(outbox(t, s, 1, 10)), nil)
	want(t, "numbering goes on", ops(commit(t, s, del("0"))), []string{"6 deleted 0"})
}

// Wait wakes after a commit that adds outbox records.
func testWait(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	w := s.Wait()
	// Drain what a backend may have queued before (a poll tick).
	select {
	case <-w:
	default:
	}
	commit(t, s, scan(obj("a", 1)))
	select {
	case <-w:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake after a commit")
	}
}

// Sources are apart: own keys, own numbering, own outbox.
func testSourcesApart(t *testing.T, c *catalog.Catalog) {
	a, b := c.Source("a", providers.ByteOrder), c.Source("b", providers.ByteOrder)
	commit(t, a, scan(obj("x", 1)), scan(obj("y", 1)))
	want(t, "b", ops(commit(t, b, scan(obj("x", 2)))), []string{"1 added x"})
	want(t, "a keys", keys(t, a, ""), []string{"x", "y"})
	want(t, "b outbox", ops(outbox(t, b, 1, 10)), []string{"1 added x"})
	ids, err := c.Sources()
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("sources %v %v", ids, err)
	}
	if c.InstanceID() == "" {
		t.Fatal("empty instance id")
	}
}

// The listing state moves begun → progress → complete, and back to
// in progress for a new first listing only.
func testListingState(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder)
	ctx := t.Context()
	state := func(want catalog.ListingState) {
		t.Helper()
		if st, err := s.ListingState(ctx); err != nil || st != want {
			t.Fatalf("listing state %+v (%v), want %+v", st, err, want)
		}
	}
	state(catalog.ListingState{})
	if err := s.SetListingProgress(ctx, ""); err != nil {
		t.Fatal(err)
	}
	state(catalog.ListingState{InProgress: true})
	if err := s.SetListingProgress(ctx, "k/\U0001F600"); err != nil {
		t.Fatal(err)
	}
	state(catalog.ListingState{InProgress: true, After: "k/\U0001F600"})
	if err := s.SetListingComplete(ctx); err != nil {
		t.Fatal(err)
	}
	state(catalog.ListingState{Complete: true})
	if err := s.SetListingComplete(ctx); err != nil {
		t.Fatal(err)
	}
	state(catalog.ListingState{Complete: true})
	if err := s.SetListingProgress(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	state(catalog.ListingState{Complete: true, InProgress: true, After: "a"})
}
