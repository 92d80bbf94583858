package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/imgly/syncer/providers"
)

// openT opens a catalog in dir and closes it when the test ends (a test that
// closes it itself gets the harmless second Close).
func openT(t testing.TB, dir string) *Catalog {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func obj(key, etag string, size int64) providers.Object {
	return providers.Object{Key: key, ETag: etag, Size: size}
}

func upsert(o providers.Object) Mutation { return Mutation{Object: o, Origin: Scan} }

func del(key string) Mutation {
	return Mutation{Object: providers.Object{Key: key}, Delete: true, Origin: Scan}
}

func commit(t *testing.T, s *Source, muts ...Mutation) []Change {
	t.Helper()
	chs, err := s.Commit(context.Background(), muts)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return chs
}

// ops summarises changes as "op key seq" lines, for readable comparisons.
func ops(chs []Change) []string {
	var out []string
	for _, c := range chs {
		out = append(out, fmt.Sprintf("%s %s %d", c.Op, c.Object.Key, c.Seq))
	}
	return out
}

func wantOps(t *testing.T, got []Change, want ...string) {
	t.Helper()
	if g := ops(got); !slices.Equal(g, want) {
		t.Fatalf("changes:\n got %q\nwant %q", g, want)
	}
}

func keys(t *testing.T, s *Source, after string) []string {
	t.Helper()
	var ks []string
	if err := s.Range(context.Background(), after, func(e Entry) error {
		ks = append(ks, e.Key)
		return nil
	}); err != nil {
		t.Fatalf("Range(%q): %v", after, err)
	}
	return ks
}

func get(t *testing.T, s *Source, key string) (Entry, bool) {
	t.Helper()
	e, ok, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return e, ok
}

func stats(t *testing.T, s *Source) Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func outbox(t *testing.T, s *Source, from uint64) []Change {
	t.Helper()
	chs, err := s.Outbox(context.Background(), from, 1<<20)
	if err != nil {
		t.Fatalf("Outbox: %v", err)
	}
	return chs
}

func TestChanged(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	base := providers.Object{Key: "k", Size: 10, ETag: "e", Version: "v", LastModified: t0, ContentType: "image/png"}
	for _, tc := range []struct {
		name string
		mod  func(o *providers.Object)
		want bool
	}{
		{"same", func(o *providers.Object) {}, false},
		{"etag", func(o *providers.Object) { o.ETag = "f" }, true},
		{"size", func(o *providers.Object) { o.Size = 11 }, true},
		{"version", func(o *providers.Object) { o.Version = "w" }, true},
		{"version unknown to one side", func(o *providers.Object) { o.Version = "" }, false},
		{"timestamp only", func(o *providers.Object) { o.LastModified = t0.Add(time.Hour) }, false},
		{"content type only", func(o *providers.Object) { o.ContentType = "image/jpeg" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := base
			tc.mod(&n)
			if got := Changed(base, n); got != tc.want {
				t.Errorf("Changed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCommitOps(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

	a := obj("a", "e1", 1)
	a.LastModified = t0
	a.Version = "v1"
	wantOps(t, commit(t, s, upsert(a), upsert(obj("b", "e1", 2))), "added a 1", "added b 2")

	// The same state again, and the same state with only a newer timestamp:
	// nothing to announce, and no sequence number is used up.
	a2 := a
	a2.LastModified = t0.Add(time.Hour)
	wantOps(t, commit(t, s, upsert(a), upsert(a2)))
	if st := stats(t, s); st.LastSeq != 2 {
		t.Fatalf("LastSeq after no-op commit = %d, want 2", st.LastSeq)
	}
	if e, _ := get(t, s, "a"); !e.LastModified.Equal(t0) || e.Seq != 1 {
		t.Fatalf("no-op commit rewrote the entry: %+v", e)
	}

	// etag, size and version each make a modification.
	a3 := a
	a3.ETag = "e2"
	a4 := a3
	a4.Size = 5
	a5 := a4
	a5.Version = "v2"
	wantOps(t, commit(t, s, upsert(a3), upsert(a4), upsert(a5)), "modified a 3", "modified a 4", "modified a 5")
	if e, ok := get(t, s, "a"); !ok || e.Seq != 5 || e.ETag != "e2" || e.Size != 5 || e.Version != "v2" {
		t.Fatalf("Get(a) = %+v, %v", e, ok)
	}

	// A delete reports the last known state; deleting an absent key is a no-op.
	chs := commit(t, s, del("b"), del("b"), del("never"))
	wantOps(t, chs, "deleted b 6")
	if chs[0].Object != obj("b", "e1", 2) {
		t.Fatalf("deleted change carries %+v, want the last known state", chs[0].Object)
	}
	if _, ok := get(t, s, "b"); ok {
		t.Fatal("b still present after delete")
	}
	// Re-adding a deleted key is an addition.
	wantOps(t, commit(t, s, upsert(obj("b", "e9", 9))), "added b 7")

	st := stats(t, s)
	if st.Objects != 2 || st.LastSeq != 7 || st.Pending != 7 {
		t.Fatalf("Stats = %+v, want 2 objects, LastSeq 7, 7 pending", st)
	}
}

func TestCommitEmptyKeyRollsBack(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	_, err := s.Commit(context.Background(), []Mutation{upsert(obj("a", "e", 1)), upsert(obj("", "e", 1))})
	if err == nil || !strings.Contains(err.Error(), "empty key") {
		t.Fatalf("Commit with empty key: err = %v, want an \"empty key\" error", err)
	}
	if _, ok := get(t, s, "a"); ok {
		t.Fatal("the valid mutation of a failed commit was kept")
	}
	if st := stats(t, s); st != (Stats{}) {
		t.Fatalf("Stats after failed commit = %+v, want zero", st)
	}
}

func TestCommitCancelledContext(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Commit(ctx, []Mutation{upsert(obj("a", "e", 1))}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit on cancelled ctx: err = %v", err)
	}
	if chs, err := s.Commit(context.Background(), nil); err != nil || chs != nil {
		t.Fatalf("Commit(nil) = %v, %v", chs, err)
	}
}

func TestSequencesPerSource(t *testing.T) {
	c := openT(t, t.TempDir())
	x := c.Source("x", providers.ByteOrder)
	y := c.Source("y", providers.ByteOrder)
	var xs, ys []uint64
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i)
		for _, ch := range commit(t, x, upsert(obj(k, "1", 1))) {
			xs = append(xs, ch.Seq)
		}
		if i%3 == 0 {
			for _, ch := range commit(t, y, upsert(obj(k, "1", 1)), upsert(obj(k, "2", 1))) {
				ys = append(ys, ch.Seq)
			}
		}
		// A no-op commit must not leave a gap.
		commit(t, x, upsert(obj(k, "1", 1)))
	}
	for name, seqs := range map[string][]uint64{"x": xs, "y": ys} {
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("source %s: sequence numbers %v are not 1, 2, 3, ...", name, seqs)
			}
		}
	}
	if len(xs) != 20 || len(ys) != 14 {
		t.Fatalf("got %d x and %d y changes, want 20 and 14", len(xs), len(ys))
	}
	ids, err := c.Sources()
	if err != nil || !slices.Equal(ids, []string{"x", "y"}) {
		t.Fatalf("Sources() = %v, %v", ids, err)
	}
	// Same keys, separate namespaces.
	if e, _ := get(t, x, "k00"); e.ETag != "1" {
		t.Fatalf("x/k00 = %+v; y's commits leaked into x", e)
	}
	if e, _ := get(t, y, "k00"); e.ETag != "2" {
		t.Fatalf("y/k00 = %+v", e)
	}
}

func TestOutboxDurable(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir)
	s := c.Source("src", providers.ByteOrder)
	now := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	c.now = func() time.Time { return now }

	lm := time.Date(2024, 2, 3, 4, 5, 6, 7, time.UTC)
	full := providers.Object{Key: "dir/ä ö+%.png", Size: 1234, ETag: `"abc"`, Version: "v7", LastModified: lm, ContentType: "image/png"}
	n := Mutation{Object: obj("n", "e", 0), Origin: Notification}
	committed := commit(t, s, upsert(full), n, del("n"))
	wantOps(t, committed, "added dir/ä ö+%.png 1", "added n 2", "deleted n 3")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c = openT(t, dir)
	s = c.Source("src", providers.ByteOrder)
	got := outbox(t, s, 0)
	if len(got) != len(committed) {
		t.Fatalf("outbox after reopen has %d records, want %d", len(got), len(committed))
	}
	for i := range got {
		g, w := got[i], committed[i]
		if g.Seq != w.Seq || g.Op != w.Op || g.Origin != w.Origin || !g.At.Equal(now) ||
			g.Object.Key != w.Object.Key || g.Object.Size != w.Object.Size || g.Object.ETag != w.Object.ETag ||
			g.Object.Version != w.Object.Version || g.Object.ContentType != w.Object.ContentType ||
			!g.Object.LastModified.Equal(w.Object.LastModified) {
			t.Errorf("outbox[%d] = %+v\n           want %+v", i, g, w)
		}
	}
	if got[1].Origin != Notification || got[0].Origin != Scan {
		t.Errorf("origins = %v, %v", got[0].Origin, got[1].Origin)
	}
	if e, ok := get(t, s, full.Key); !ok || !e.LastModified.Equal(lm) || e.ContentType != "image/png" || e.Seq != 1 {
		t.Errorf("entry after reopen = %+v, %v", e, ok)
	}
	// from and limit.
	if chs, _ := s.Outbox(context.Background(), 2, 1); len(chs) != 1 || chs[0].Seq != 2 {
		t.Errorf("Outbox(2, 1) = %v", ops(chs))
	}
	if chs, _ := s.Outbox(context.Background(), 4, 10); len(chs) != 0 {
		t.Errorf("Outbox(4, 10) = %v", ops(chs))
	}
	// Sequence numbers continue after reopen.
	wantOps(t, commit(t, s, upsert(obj("z", "e", 1))), "added z 4")
	// An unknown source has an empty outbox.
	if chs := outbox(t, c.Source("nope", providers.ByteOrder), 0); len(chs) != 0 {
		t.Errorf("outbox of unknown source = %v", ops(chs))
	}
}

func TestWaitSignalsCommit(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	w := s.Wait()
	commit(t, s, upsert(obj("a", "e", 1)))
	select {
	case <-w:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not fire after a commit with changes")
	}
	commit(t, s, upsert(obj("a", "e", 1))) // no change, no signal
	select {
	case <-w:
		t.Fatal("Wait fired after a commit without changes")
	default:
	}
}

func TestGuard(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	commit(t, s, upsert(obj("a", "e1", 1))) // seq 1

	// A scan saw "a" at seq 1; a notification modifies it to seq 2 meanwhile.
	wantOps(t, commit(t, s, Mutation{Object: obj("a", "e2", 1), Origin: Notification}), "modified a 2")
	stale := upsert(obj("a", "e1-listed", 1))
	stale.Guard, stale.IfSeq = true, 1
	wantOps(t, commit(t, s, stale))
	staleDel := del("a")
	staleDel.Guard, staleDel.IfSeq = true, 1
	wantOps(t, commit(t, s, staleDel))
	if e, _ := get(t, s, "a"); e.ETag != "e2" {
		t.Fatalf("stale guarded mutation overwrote the newer state: %+v", e)
	}

	// Computed against the current state: applies.
	fresh := upsert(obj("a", "e3", 1))
	fresh.Guard, fresh.IfSeq = true, 2
	wantOps(t, commit(t, s, fresh), "modified a 3")

	// IfSeq 0 means "absent".
	add := upsert(obj("b", "e", 1))
	add.Guard = true
	wantOps(t, commit(t, s, add), "added b 4")
	wantOps(t, commit(t, s, add)) // b exists now: guard fails
	freshDel := del("b")
	freshDel.Guard, freshDel.IfSeq = true, 4
	wantOps(t, commit(t, s, freshDel), "deleted b 5")
}

func seqMut(key, etag, sequencer string, delete bool) Mutation {
	return Mutation{Object: obj(key, etag, 1), Delete: delete, Origin: Notification, Sequencer: sequencer}
}

func TestSequencer(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)

	wantOps(t, commit(t, s, seqMut("a", "e2", "0002", false)), "added a 1")
	// Older: skipped, even though it changes the content.
	wantOps(t, commit(t, s, seqMut("a", "e1", "0001", false)))
	wantOps(t, commit(t, s, seqMut("a", "", "0001", true)))
	// Duplicate: a no-op.
	wantOps(t, commit(t, s, seqMut("a", "e2-dup", "0002", false)))
	if e, _ := get(t, s, "a"); e.ETag != "e2" {
		t.Fatalf("a = %+v after older and duplicate notifications", e)
	}
	// Equal sequencer: the delete wins over the upsert ...
	wantOps(t, commit(t, s, seqMut("a", "", "0002", true)), "deleted a 2")
	// ... and a late or repeated upsert at that sequencer (or older) does not
	// resurrect the key, although the key is gone from the objects.
	wantOps(t, commit(t, s, seqMut("a", "e2", "0002", false), seqMut("a", "e1", "0001", false)))
	if _, ok := get(t, s, "a"); ok {
		t.Fatal("a resurrected by a late upsert")
	}
	// The marker survives the deletion across reopen too: checked below.
	// A newer upsert creates it again.
	wantOps(t, commit(t, s, seqMut("a", "e3", "0003", false)), "added a 3")

	// Delete first at an equal sequencer, then the upsert: still deleted.
	wantOps(t, commit(t, s, seqMut("b", "e", "0005", false), seqMut("b", "", "0005", true)), "added b 4", "deleted b 5")
	wantOps(t, commit(t, s, seqMut("b", "e", "0005", false)))

	// A delete of a key the catalog never had still records its sequencer:
	// the "created" delivered after it must not add the key.
	wantOps(t, commit(t, s, seqMut("c", "", "0009", true)))
	wantOps(t, commit(t, s, seqMut("c", "e", "0008", false), seqMut("c", "e", "0009", false)))
	if _, ok := get(t, s, "c"); ok {
		t.Fatal("c added by a created older than or equal to its delete")
	}
	// Mutations without a sequencer (scans) are not ordered by markers.
	wantOps(t, commit(t, s, upsert(obj("c", "e", 1))), "added c 6")
}

func TestSequencerMarkerSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir)
	s := c.Source("src", providers.ByteOrder)
	wantOps(t, commit(t, s, seqMut("a", "e", "0002", false), seqMut("a", "", "0002", true)), "added a 1", "deleted a 2")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openT(t, dir)
	s = c.Source("src", providers.ByteOrder)
	wantOps(t, commit(t, s, seqMut("a", "e", "0002", false), seqMut("a", "e", "0001", false)))
	wantOps(t, commit(t, s, seqMut("a", "e", "0003", false)), "added a 3")
}

func TestListedAt(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	clock := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return clock }

	commit(t, s, upsert(obj("a", "e1", 1)), upsert(obj("b", "e1", 1)), upsert(obj("gone", "e1", 1)))

	// A notification before the listing began: the listing is newer.
	wantOps(t, commit(t, s, seqMut("early", "e1", "1", false)), "added early 4")

	listedAt := clock.Add(time.Minute)
	clock = listedAt.Add(time.Second) // notifications arrive during the scan
	wantOps(t, commit(t, s, seqMut("a", "e2", "1", false), seqMut("gone", "", "1", true)), "modified a 5", "deleted gone 6")

	scan := func(m Mutation) Mutation { m.ListedAt = listedAt; return m }
	got := commit(t, s,
		scan(upsert(obj("a", "e1", 1))),    // stale listing of a: skipped
		scan(upsert(obj("gone", "e1", 1))), // listing still had it: not resurrected
		scan(upsert(obj("b", "e2", 1))),    // no notification: applied
		scan(del("early")),                 // notified before the listing: applied
		scan(upsert(obj("new", "e1", 1))),  // no marker at all: applied
	)
	wantOps(t, got, "modified b 7", "deleted early 8", "added new 9")
	if e, _ := get(t, s, "a"); e.ETag != "e2" {
		t.Fatalf("a = %+v: scan overwrote a newer notification", e)
	}
	if _, ok := get(t, s, "gone"); ok {
		t.Fatal("scan resurrected a key deleted by a notification after ListedAt")
	}
	// A later scan that began after the notification applies again.
	later := upsert(obj("a", "e4", 1))
	later.ListedAt = clock.Add(time.Second)
	wantOps(t, commit(t, s, later), "modified a 10")
}

func TestRange(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	ctx := context.Background()

	if ks := keys(t, s, ""); len(ks) != 0 {
		t.Fatalf("Range on a source never committed = %q", ks)
	}
	all := []string{"a", "a/b", "a0", "b", "b/c/d", "z"}
	var muts []Mutation
	for _, k := range []string{"z", "b/c/d", "a", "b", "a0", "a/b"} {
		muts = append(muts, upsert(obj(k, "e", 1)))
	}
	commit(t, s, muts...)

	for _, tc := range []struct {
		after string
		want  []string
	}{
		{"", all},
		{"a", all[1:]},   // strictly after an existing key
		{"a/", all[1:]},  // between keys
		{"a/b", all[2:]}, // strictly after
		{"az", all[3:]},
		{"z", nil},
		{"zz", nil},
	} {
		if got := keys(t, s, tc.after); !slices.Equal(got, tc.want) {
			t.Errorf("Range(after %q) = %q, want %q", tc.after, got, tc.want)
		}
	}

	// ErrStop ends the range without error; other errors come back wrapped.
	var seen []string
	err := s.Range(ctx, "", func(e Entry) error {
		seen = append(seen, e.Key)
		if len(seen) == 2 {
			return ErrStop
		}
		return nil
	})
	if err != nil || !slices.Equal(seen, all[:2]) {
		t.Fatalf("Range with ErrStop: err %v, saw %q", err, seen)
	}
	boom := errors.New("boom")
	if err := s.Range(ctx, "", func(Entry) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Range callback error = %v, want wrapped boom", err)
	}
	// Entries carry their state and sequence number.
	entries := 0
	if err := s.Range(ctx, "b", func(e Entry) error {
		entries++
		if e.Key != "b/c/d" || e.Seq != 2 || e.ETag != "e" || e.Size != 1 {
			t.Errorf("first entry after b = %+v", e)
		}
		return ErrStop
	}); err != nil {
		t.Fatalf("Range stopped by ErrStop: %v", err)
	}
	if entries != 1 {
		t.Fatalf("Range after b saw %d entries, want 1", entries)
	}
}

func TestRangeCancelled(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	var muts []Mutation
	for i := range 3000 {
		muts = append(muts, upsert(obj(fmt.Sprintf("k%05d", i), "e", 1)))
	}
	commit(t, s, muts...)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := s.Range(ctx, "", func(Entry) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Range after cancel: err = %v (visited %d)", err, n)
	}
	if n >= 3000 {
		t.Fatalf("Range visited all %d entries despite cancellation", n)
	}
}

func utf16Less(a, b string) int {
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func TestRangeUTF16Order(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir)
	s := c.Source("az", providers.UTF16Order)
	ks := []string{
		"emoji/\uFF21.png",     // fullwidth A: EF BC A1 in UTF-8, FF21 in UTF-16
		"emoji/\U0001F600.png", // grinning face: F0 9F 98 80, D83D DE00
		"emoji/\uE000",         // private use: EE 80 80
		"emoji/\uFFFD",
		"emoji/\u00e9",
		"emoji/z",
		"emoji/\U0010FFFF",
		"emoji/\uD7FF",
		"\uFFFF",
		"\U00010000",
		"a",
	}
	var muts []Mutation
	for _, k := range ks {
		muts = append(muts, upsert(obj(k, "e", 1)))
	}
	commit(t, s, muts...)

	want := slices.Clone(ks)
	slices.SortFunc(want, utf16Less)
	if !slices.IsSortedFunc(want, utf16Less) || slices.Index(want, "emoji/\U0001F600.png") > slices.Index(want, "emoji/\uFF21.png") {
		t.Fatal("reference order is wrong")
	}
	check := func(s *Source) {
		t.Helper()
		if got := keys(t, s, ""); !slices.Equal(got, want) {
			t.Fatalf("Range order:\n got %+q\nwant %+q", got, want)
		}
		// after is a key in provider order too.
		i := slices.Index(want, "emoji/\U0001F600.png")
		if got := keys(t, s, want[i]); !slices.Equal(got, want[i+1:]) {
			t.Fatalf("Range(after %+q) = %+q, want %+q", want[i], got, want[i+1:])
		}
		for _, k := range ks {
			if e, ok := get(t, s, k); !ok || e.Key != k {
				t.Fatalf("Get(%+q) = %+v, %v", k, e, ok)
			}
		}
	}
	check(s)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openT(t, dir)
	check(c.Source("az", providers.UTF16Order))

	// Deletes and the outbox speak provider keys, not sort keys.
	s = c.Source("az", providers.UTF16Order)
	chs := commit(t, s, del("emoji/\uFF21.png"))
	wantOps(t, chs, "deleted emoji/\uFF21.png 12")
	ob := outbox(t, s, 0)
	for i, ch := range ob[:len(ks)] {
		if ch.Object.Key != ks[i] {
			t.Fatalf("outbox[%d] key %+q, want %+q", i, ch.Object.Key, ks[i])
		}
	}
	if ob[len(ob)-1].Object.Key != "emoji/\uFF21.png" {
		t.Fatalf("outbox delete key %+q", ob[len(ob)-1].Object.Key)
	}
}

func TestStatsAndAcks(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir)
	s := c.Source("src", providers.ByteOrder)
	ctx := context.Background()

	if st := stats(t, s); st != (Stats{}) {
		t.Fatalf("Stats of an unknown source = %+v", st)
	}
	if seq, err := s.LastSeq(ctx); seq != 0 || err != nil {
		t.Fatalf("LastSeq of an unknown source = %d, %v", seq, err)
	}
	if err := s.Ack(ctx, 5); err != nil {
		t.Fatalf("Ack of an unknown source: %v", err)
	}
	for i := range 10 {
		commit(t, s, upsert(obj(fmt.Sprintf("k%d", i), "e", 1)))
	}
	commit(t, s, del("k0"), del("k1"))
	if st := stats(t, s); st != (Stats{Objects: 8, LastSeq: 12, Pending: 12}) {
		t.Fatalf("Stats = %+v", st)
	}
	if seq, err := s.LastSeq(ctx); seq != 12 || err != nil {
		t.Fatalf("LastSeq = %d, %v", seq, err)
	}

	if err := s.Ack(ctx, 7); err != nil {
		t.Fatal(err)
	}
	// Acked changes stay acked across a reopen.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openT(t, dir)
	s = c.Source("src", providers.ByteOrder)
	var left []uint64
	for _, ch := range outbox(t, s, 0) {
		left = append(left, ch.Seq)
	}
	if want := []uint64{8, 9, 10, 11, 12}; !slices.Equal(left, want) {
		t.Fatalf("outbox after Ack(7) = %v, want %v", left, want)
	}
	if st := stats(t, s); st != (Stats{Objects: 8, LastSeq: 12, Pending: 5}) {
		t.Fatalf("Stats after ack = %+v", st)
	}
	// Acking again, or less, is a no-op; acking past the end empties it.
	for _, through := range []uint64{7, 3, 100} {
		if err := s.Ack(ctx, through); err != nil {
			t.Fatal(err)
		}
	}
	if st := stats(t, s); st.Pending != 0 || st.LastSeq != 12 {
		t.Fatalf("Stats after acking everything = %+v", st)
	}
	// Sequence numbers are not reused once the outbox is empty.
	wantOps(t, commit(t, s, upsert(obj("n", "e", 1))), "added n 13")
}

func TestInstanceID(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir)
	id := c.InstanceID()
	if len(id) != 12 {
		t.Fatalf("InstanceID %q: want 12 hex digits", id)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openT(t, dir)
	if c.InstanceID() != id {
		t.Fatalf("InstanceID changed across reopen: %q then %q", id, c.InstanceID())
	}
	if other := openT(t, t.TempDir()).InstanceID(); other == id {
		t.Fatalf("two catalogs share InstanceID %q", id)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir)
	start := time.Now()
	c2, err := Open(dir)
	if err == nil {
		c2.Close()
		t.Fatal("second Open of a catalog in use succeeded")
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: %v, want a \"locked\" error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v to fail", d)
	}
}

func TestOpenNotADirectory(t *testing.T) {
	f := t.TempDir() + "/file"
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Open(f); err == nil {
		c.Close()
		t.Fatal("Open on a regular file succeeded")
	}
}

func TestEntryCodecRoundTrip(t *testing.T) {
	for _, o := range []providers.Object{
		{},
		{Key: "k"},
		{Key: "k", Size: -1},
		{Key: "k", Size: 1 << 62, ETag: `"x"`, Version: "3", ContentType: "a/b",
			LastModified: time.Date(2262, 1, 1, 0, 0, 0, 1, time.UTC)},
		{Key: "k", LastModified: time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))},
		{Key: "k", ETag: strings.Repeat("e", 300), ContentType: "\x00\xff"},
	} {
		for _, seq := range []uint64{0, 1, 1<<64 - 1} {
			b := encodeEntry([]byte("prefix-is-kept"), seq, &o)
			if !bytes.HasPrefix(b, []byte("prefix-is-kept")) {
				t.Fatal("encodeEntry did not append")
			}
			e, err := decodeEntry(o.Key, b[len("prefix-is-kept"):])
			if err != nil {
				t.Fatalf("decode %+v: %v", o, err)
			}
			if e.Seq != seq || e.Key != o.Key || e.Size != o.Size || e.ETag != o.ETag || e.Version != o.Version ||
				e.ContentType != o.ContentType || !e.LastModified.Equal(o.LastModified) ||
				e.LastModified.IsZero() != o.LastModified.IsZero() {
				t.Fatalf("round trip of %+v (seq %d) = %+v", o, seq, e)
			}
		}
	}
}

func TestChangeCodecRoundTrip(t *testing.T) {
	for _, ch := range []Change{
		{Seq: 1, Op: Added, Origin: Scan},
		{Seq: 2, Op: Deleted, Origin: Notification, At: time.Date(2025, 1, 1, 0, 0, 0, 5, time.UTC),
			Object: providers.Object{Key: "a/\U0001F600", Size: 3, ETag: "e", Version: "v", ContentType: "c",
				LastModified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{Seq: 1<<64 - 1, Op: Modified, Origin: Scan, Object: providers.Object{Key: ""}},
	} {
		got, err := decodeChange(ch.Seq, encodeChange(nil, &ch))
		if err != nil {
			t.Fatalf("decode %+v: %v", ch, err)
		}
		if got.Seq != ch.Seq || got.Op != ch.Op || got.Origin != ch.Origin || !got.At.Equal(ch.At) ||
			got.At.IsZero() != ch.At.IsZero() || got.Object.Key != ch.Object.Key || got.Object.Size != ch.Object.Size ||
			got.Object.ETag != ch.Object.ETag || got.Object.Version != ch.Object.Version ||
			got.Object.ContentType != ch.Object.ContentType || !got.Object.LastModified.Equal(ch.Object.LastModified) {
			t.Fatalf("round trip of %+v = %+v", ch, got)
		}
	}
}

func TestMarkerCodec(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, del := range []bool{false, true} {
		m, ok := decodeMarker(encodeMarker("seq\x00", del, at))
		if !ok || m.seq != "seq\x00" || m.delete != del || !m.at.Equal(at) {
			t.Fatalf("marker round trip: %+v, %v", m, ok)
		}
	}
	for _, b := range [][]byte{nil, {}, {9}, {codecVersion}, {codecVersion, 0}, {codecVersion, 0, 0, 5, 'a'}} {
		if _, ok := decodeMarker(b); ok {
			t.Errorf("decodeMarker(%v) accepted a corrupt marker", b)
		}
	}
}

func TestNewer(t *testing.T) {
	up := marker{seq: "5"}
	dl := marker{seq: "5", delete: true}
	for _, tc := range []struct {
		seq  string
		del  bool
		mk   marker
		want bool
	}{
		{"6", false, dl, true},
		{"4", true, up, false},
		{"5", false, up, false},
		{"5", true, up, true},
		{"5", true, dl, false},
		{"5", false, dl, false},
	} {
		if got := newer(tc.seq, tc.del, tc.mk); got != tc.want {
			t.Errorf("newer(%q, %v, %+v) = %v, want %v", tc.seq, tc.del, tc.mk, got, tc.want)
		}
	}
}

func TestDecodeCorrupt(t *testing.T) {
	good := encodeEntry(nil, 7, &providers.Object{Key: "k", Size: 9, ETag: "etag", Version: "v", ContentType: "ct",
		LastModified: time.Unix(100, 0)})
	goodCh := encodeChange(nil, &Change{Op: Added, Origin: Scan, At: time.Unix(5, 0), Object: providers.Object{Key: "key", ETag: "e"}})
	// Every strict prefix of a valid record is corrupt (the last field is a
	// string, so no prefix is itself complete).
	for i := range len(good) {
		if _, err := decodeEntry("k", good[:i]); !errors.Is(err, errCorrupt) {
			t.Errorf("decodeEntry(prefix %d of %d) err = %v", i, len(good), err)
		}
	}
	for i := range len(goodCh) {
		if _, err := decodeChange(1, goodCh[:i]); !errors.Is(err, errCorrupt) {
			t.Errorf("decodeChange(prefix %d of %d) err = %v", i, len(goodCh), err)
		}
	}
	for _, b := range [][]byte{
		{2},                                    // unknown version
		{codecVersion, 0xff, 0xff, 0xff, 0xff}, // unterminated uvarint
		{codecVersion, 1, 0, 0, 0xff, 0xff, 0x7f},                       // etag length far beyond the record
		append([]byte{codecVersion}, bytes.Repeat([]byte{0x80}, 11)...), // overlong uvarint
	} {
		if _, err := decodeEntry("k", b); err == nil {
			t.Errorf("decodeEntry(%v) accepted a corrupt record", b)
		}
		if _, err := decodeChange(1, b); err == nil {
			t.Errorf("decodeChange(%v) accepted a corrupt record", b)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(nil, 1, &providers.Object{Key: "k"}))
	f.Add(encodeEntry(nil, 1<<40, &providers.Object{Key: "k", Size: 1 << 40, ETag: `"d41d8cd98f00b204e9800998ecf8427e"`,
		Version: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo", ContentType: "image/jpeg",
		LastModified: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}))
	f.Add(encodeChange(nil, &Change{Op: Deleted, Origin: Notification, At: time.Unix(1, 2),
		Object: providers.Object{Key: "a/b.png", Size: 5, ETag: "e"}}))
	f.Add([]byte{})
	f.Add([]byte{codecVersion, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeEntry("k", b); err == nil {
			// Accepted input re-encodes to a record that decodes the same.
			e2, err := decodeEntry("k", encodeEntry(nil, e.Seq, &e.Object))
			if err != nil || e2.Seq != e.Seq || e2.Size != e.Size || e2.ETag != e.ETag || e2.Version != e.Version ||
				e2.ContentType != e.ContentType || !e2.LastModified.Equal(e.LastModified) {
				t.Fatalf("re-encoded %+v decodes to %+v, %v", e, e2, err)
			}
		}
		if c, err := decodeChange(3, b); err == nil && c.Seq != 3 {
			t.Fatalf("decodeChange kept seq %d", c.Seq)
		}
		decodeMarker(b)
	})
}

// Notifications without a sequencer (Ceph webhooks, S3 events whose sequencer
// was unusable) must still protect their change from a scan whose listing
// began before it: ListedAt's contract does not depend on the sequencer.
func TestListedAtUnsequencedNotification(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	clock := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return clock }
	commit(t, s, upsert(obj("a", "e1", 1)), upsert(obj("b", "e1", 1)))

	listedAt := clock
	clock = clock.Add(time.Second)
	wantOps(t, commit(t, s,
		Mutation{Object: obj("a", "e2", 1), Origin: Notification},
		Mutation{Object: obj("b", "", 0), Delete: true, Origin: Notification},
		Mutation{Object: obj("c", "e1", 1), Origin: Notification},
	), "modified a 3", "deleted b 4", "added c 5")

	scan := func(m Mutation) Mutation { m.ListedAt = listedAt; return m }
	wantOps(t, commit(t, s, scan(upsert(obj("a", "e1", 1))), scan(upsert(obj("b", "e1", 1))), scan(del("c"))))
	if e, _ := get(t, s, "a"); e.ETag != "e2" {
		t.Fatalf("a = %+v: a stale listing overwrote an unsequenced notification", e)
	}

	// An unsequenced notification does not erase the ordering a sequenced
	// one established: an older sequencer is still refused afterwards.
	wantOps(t, commit(t, s, seqMut("d", "e1", "0005", false)), "added d 6")
	wantOps(t, commit(t, s, Mutation{Object: obj("d", "e2", 1), Origin: Notification}), "modified d 7")
	wantOps(t, commit(t, s, seqMut("d", "e0", "0004", false)))
	wantOps(t, commit(t, s, seqMut("d", "e3", "0006", false)), "modified d 8")
	// And a sequenced notification after an unsequenced one on a new key
	// applies.
	wantOps(t, commit(t, s, Mutation{Object: obj("f", "e1", 1), Origin: Notification}), "added f 9")
	wantOps(t, commit(t, s, seqMut("f", "e2", "0001", false)), "modified f 10")
}

// A notification whose event predates the state a listing recorded is stale:
// it must not roll the key back (PUT A, PUT B, a scan records B, then A's
// notification arrives).
func TestNotificationOlderThanTheRecordedStateIsSkipped(t *testing.T) {
	s := openT(t, t.TempDir()).Source("src", providers.ByteOrder)
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	b := obj("k", "etag-b", 2)
	b.LastModified = t0
	wantOps(t, commit(t, s, upsert(b)), "added k 1")

	note := func(o providers.Object, del bool, at time.Time, seq string) Mutation {
		o.LastModified = at
		return Mutation{Object: o, Delete: del, Origin: Notification, Sequencer: seq, EventTime: at}
	}
	wantOps(t, commit(t, s, note(obj("k", "etag-a", 1), false, t0.Add(-time.Minute), "01")))
	wantOps(t, commit(t, s, note(obj("k", "", 0), true, t0.Add(-time.Minute), "02")))
	if e, ok, _ := s.Get(context.Background(), "k"); !ok || e.ETag != "etag-b" {
		t.Fatalf("entry %+v %v, want B kept", e, ok)
	}
	// Newer events apply, and so do events within the margin that
	// differing timestamp precisions need.
	wantOps(t, commit(t, s, note(obj("k", "etag-c", 3), false, t0.Add(-time.Second), "03")), "modified k 2")
	wantOps(t, commit(t, s, note(obj("k", "", 0), true, t0.Add(2*time.Second), "04")), "deleted k 3")
	// Without an event time (a stat decided it) nothing is skipped.
	wantOps(t, commit(t, s, Mutation{Object: b, Origin: Notification}), "added k 4")
}

// An ack larger than one chunk deletes exactly what it covers, over several
// transactions, and an ack of everything leaves a working outbox behind.
func TestAckInChunks(t *testing.T) {
	c := openT(t, t.TempDir())
	s := c.Source("src", providers.ByteOrder)
	ctx := context.Background()
	n := 3*ackChunkSize + 17
	fillOutbox(t, s, n)

	through := uint64(2*ackChunkSize + 5)
	if err := s.Ack(ctx, through); err != nil {
		t.Fatal(err)
	}
	left := outbox(t, s, 0)
	if len(left) != n-int(through) || left[0].Seq != through+1 || left[len(left)-1].Seq != uint64(n) {
		t.Fatalf("after Ack(%d): %d left, %d..%d; want %d left, %d..%d",
			through, len(left), left[0].Seq, left[len(left)-1].Seq, n-int(through), through+1, n)
	}
	if st := stats(t, s); st.Pending != uint64(n)-through || st.Objects != uint64(n) {
		t.Fatalf("Stats = %+v", st)
	}

	if err := s.Ack(ctx, uint64(n)); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Pending != 0 || st.LastSeq != uint64(n) || st.Objects != uint64(n) {
		t.Fatalf("Stats after acking everything = %+v", st)
	}
	wantOps(t, commit(t, s, upsert(obj("z-new", "e", 1))), fmt.Sprintf("added z-new %d", n+1))
	if got := outbox(t, s, 0); len(got) != 1 || got[0].Seq != uint64(n+1) {
		t.Fatalf("outbox after a new commit = %v", got)
	}
}
