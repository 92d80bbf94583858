package catalog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/imgly/syncer/providers"
)

// ixObj is object i of the build tests: names, sizes and times in orders
// unlike the key's, so that no index equals the key order.
func ixObj(i, gen int) providers.Object {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	return providers.Object{
		Key:          fmt.Sprintf("dir%02d/%05d/%s-%d.jpg", i%7, i, []string{"zeta", "alpha", "mü", "Ωmega", "ＡＢ\ue000"}[i%5], i*7919%1000),
		Size:         int64((i*104729+gen)%5000 + 1),
		ETag:         fmt.Sprintf("%d-%d", i, gen),
		LastModified: t0.Add(time.Duration((i*7907+gen*13)%100000) * time.Millisecond),
	}
}

// wantIndexes checks that s's index buckets hold exactly the keys its
// objects give, and that readers see the source as indexed.
func wantIndexes(t *testing.T, c *Catalog, s *Source) {
	t.Helper()
	err := c.bolt().View(func(tx *bolt.Tx) error {
		src := tx.Bucket(rootBucket).Bucket([]byte(s.ID()))
		if st := indexState(src); st != 0 {
			return fmt.Errorf("index state %q after the build", st)
		}
		if src.Bucket(ixDirty) != nil {
			return errors.New("dirty bucket left after the build")
		}
		var want [3][]string
		objs := src.Bucket(objectBucket)
		if err := objs.ForEach(func(k, v []byte) error {
			e, err := decodeEntry(s.order.FromSortKey(string(k)), v)
			if err != nil {
				return err
			}
			m, sz, n := ixKeys(k, &e.Object)
			for i, x := range [][]byte{m, sz, n} {
				want[i] = append(want[i], string(x))
			}
			return nil
		}); err != nil {
			return err
		}
		for i, name := range ixBuckets {
			slices.Sort(want[i])
			var got []string
			b := src.Bucket(name)
			if b == nil {
				return fmt.Errorf("no bucket %s", name)
			}
			b.ForEach(func(k, _ []byte) error { got = append(got, string(k)); return nil }) //nolint:errcheck
			if !slices.Equal(got, want[i]) {
				return fmt.Errorf("%s holds %d keys, want %d (first difference at %d)", name, len(got), len(want[i]), firstDiff(got, want[i]))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !readsIndexed(t, s) {
		t.Error("the built source's snapshot is not Indexed")
	}
}

// readsIndexed says whether a reader of s sees its indexes.
func readsIndexed(t *testing.T, s *Source) bool {
	t.Helper()
	var on bool
	if err := s.View(context.Background(), func(sn *Snapshot) error { on = sn.Indexed(); return nil }); err != nil {
		t.Fatal(err)
	}
	return on
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func importN(t *testing.T, s *Source, from, n, gen int) {
	t.Helper()
	muts := make([]Mutation, 0, n)
	for i := from; i < from+n; i++ {
		muts = append(muts, Mutation{Object: ixObj(i, gen), Origin: Scan})
	}
	if _, err := s.Commit(context.Background(), muts); err != nil {
		t.Fatal(err)
	}
}

// A deferred first import leaves the indexes to the build, readers see the
// source unindexed meanwhile, and the build gives exactly the indexes that
// maintaining them commit by commit gives — from one sorted run in memory
// and from many merged from disk.
func TestDeferredIndexBuild(t *testing.T) {
	for _, tc := range []struct {
		runBytes int
		order    providers.Order
	}{{0, providers.ByteOrder}, {4 << 10, providers.ByteOrder}, {4 << 10, providers.UTF16Order}} {
		runBytes, order := tc.runBytes, tc.order
		t.Run(fmt.Sprintf("runBytes=%d,utf16=%v", runBytes, order == providers.UTF16Order), func(t *testing.T) {
			ctx := context.Background()
			c := openT(t, t.TempDir())
			s := c.Source("s", order).Indexed(true)
			s.b.(*boltSource).build.runBytes = runBytes
			if err := s.DeferIndexes(ctx); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3000; i += 500 {
				importN(t, s, i, 500, 0)
			}
			if readsIndexed(t, s) {
				t.Error("a deferred source reads as indexed before its build")
			}
			built, err := s.BuildIndexes(ctx)
			if err != nil || !built {
				t.Fatalf("BuildIndexes = %v, %v; want built", built, err)
			}
			wantIndexes(t, c, s)
			if built, err := s.BuildIndexes(ctx); built || err != nil {
				t.Fatalf("a second BuildIndexes = %v, %v; want nothing to build", built, err)
			}
			// Maintained again: a later commit keeps them exact.
			importN(t, s, 100, 50, 1)
			wantIndexes(t, c, s)

			// The same objects committed with the indexes maintained
			// give the same index buckets.
			inline := c.Source("inline", order).Indexed(true)
			for i := 0; i < 3000; i += 500 {
				importN(t, inline, i, 500, 0)
			}
			importN(t, inline, 100, 50, 1)
			if err := c.bolt().View(func(tx *bolt.Tx) error {
				a, b := tx.Bucket(rootBucket).Bucket([]byte("s")), tx.Bucket(rootBucket).Bucket([]byte("inline"))
				for _, n := range ixBuckets {
					if ka, kb := keysOf(a.Bucket(n)), keysOf(b.Bucket(n)); !slices.Equal(ka, kb) {
						t.Errorf("%s: built %d keys, maintained %d", n, len(ka), len(kb))
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func keysOf(b *bolt.Bucket) []string {
	var out []string
	b.ForEach(func(k, _ []byte) error { out = append(out, string(k)); return nil }) //nolint:errcheck
	return out
}

// Commits between the build's transactions — additions, deletions, and
// modifications of size and time, of keys read already and keys not yet
// read — all end up in the indexes, and nothing stale stays.
func TestIndexBuildWithConcurrentCommits(t *testing.T) {
	ctx := context.Background()
	c := openT(t, t.TempDir())
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	bs := s.b.(*boltSource)
	bs.build = buildKnobs{runBytes: 8 << 10, readN: 300, txKeys: 1000}
	if err := s.DeferIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 4000
	importN(t, s, 0, n, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	steps := map[string]int{}
	gen := 1
	bs.build.step = func(phase string) error {
		steps[phase]++
		gen++
		var muts []Mutation
		for range 20 {
			i := rng.IntN(n + 500) // some beyond the import: additions
			switch rng.IntN(3) {
			case 0:
				muts = append(muts, Mutation{Object: providers.Object{Key: ixObj(i, 0).Key}, Delete: true, Origin: Notification})
			default:
				muts = append(muts, Mutation{Object: ixObj(i, gen), Origin: Notification})
			}
		}
		_, err := s.Commit(ctx, muts)
		return err
	}
	if built, err := s.BuildIndexes(ctx); err != nil || !built {
		t.Fatalf("BuildIndexes = %v, %v", built, err)
	}
	if steps["read"] < 5 || steps["append"] < 5 {
		t.Fatalf("the build ran %v steps; the test needs commits between several transactions of each phase", steps)
	}
	wantIndexes(t, c, s)
}

// A build cut short (a shutdown, a crash) leaves the source unindexed for
// readers and is begun again, from scratch, by the next BuildIndexes.
func TestIndexBuildInterrupted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := openT(t, dir)
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	bs := s.b.(*boltSource)
	bs.build = buildKnobs{readN: 500, txKeys: 1000}
	if err := s.DeferIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	importN(t, s, 0, 3000, 0)
	stop := errors.New("shutdown")
	appends := 0
	bs.build.step = func(phase string) error {
		if phase == "append" {
			if appends++; appends == 3 {
				return stop
			}
		}
		return nil
	}
	if _, err := s.BuildIndexes(ctx); !errors.Is(err, stop) {
		t.Fatalf("BuildIndexes = %v, want the step's error", err)
	}
	if readsIndexed(t, s) {
		t.Error("a half-built index reads as indexed")
	}
	// Commits in between record themselves as during a build.
	importN(t, s, 2990, 20, 1)
	c.Close()

	c = openT(t, dir)
	s = c.Source("s", providers.ByteOrder).Indexed(true)
	if built, err := s.BuildIndexes(ctx); err != nil || !built {
		t.Fatalf("BuildIndexes after the restart = %v, %v", built, err)
	}
	wantIndexes(t, c, s)
}

// A source without indexes drops a deferred or half-built state with the
// indexes, and DeferIndexes leaves a source that has its indexes alone.
func TestIndexStateDroppedAndKept(t *testing.T) {
	ctx := context.Background()
	c := openT(t, t.TempDir())
	on := c.Source("s", providers.ByteOrder).Indexed(true)
	if err := on.DeferIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	importN(t, on, 0, 100, 0)
	off := c.Source("s", providers.ByteOrder)
	importN(t, off, 100, 1, 0)
	if built, err := on.BuildIndexes(ctx); built || err != nil {
		t.Fatalf("BuildIndexes after indexing was turned off = %v, %v; want nothing to build", built, err)
	}
	importN(t, on, 101, 1, 0) // built inline, as for a catalog without indexes
	wantIndexes(t, c, on)
	if err := on.DeferIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	importN(t, on, 102, 1, 0)
	wantIndexes(t, c, on) // still maintained: nothing was deferred
}

// The external sort gives every record once, in order, whether it fits
// one buffer, spills a few runs or very many.
func TestExtSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var recs []string
	for range 20_000 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = byte('a' + rng.IntN(4)) // many shared prefixes and duplicates
		}
		recs = append(recs, string(b))
	}
	want := slices.Clone(recs)
	slices.Sort(want)
	for _, budget := range []int{64 << 20, 256 << 10, 4 << 10} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			s := &extSort{dir: t.TempDir(), budget: budget}
			defer s.close()
			for _, r := range recs {
				if err := s.add(r[0], []byte(r[1:])); err != nil {
					t.Fatal(err)
				}
			}
			it, err := s.sorted(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer it.stop()
			var got []string
			for {
				r, err := it.next()
				if err != nil {
					t.Fatal(err)
				}
				if r == nil {
					break
				}
				got = append(got, string(r))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%d records out (first difference at %d), want %d", len(got), firstDiff(got, want), len(want))
			}
		})
	}
}

// IndexState follows a source through a deferred build.
func TestIndexStateThroughABuild(t *testing.T) {
	ctx := context.Background()
	c := openT(t, t.TempDir())
	state := func(s *Source) string {
		t.Helper()
		st, err := s.IndexState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := state(c.Source("s", providers.ByteOrder)); st != IndexesOff {
		t.Errorf("unindexed source: %q", st)
	}
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	bs := s.b.(*boltSource)
	bs.build.readN = 100
	if err := s.DeferIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	importN(t, s, 0, 500, 0)
	if st := state(s); st != IndexesPending {
		t.Errorf("deferred: %q", st)
	}
	var during []string
	bs.build.step = func(string) error { during = append(during, state(s)); return nil }
	if _, err := s.BuildIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if len(during) == 0 || during[0] != IndexesBuilding {
		t.Errorf("during the build: %q", during)
	}
	if st := state(s); st != IndexesReady {
		t.Errorf("built: %q", st)
	}
}

// A build whose source is opened without indexes meanwhile (the indexes
// dropped under it) stops with an error, not a panic, in each phase.
func TestIndexBuildSuperseded(t *testing.T) {
	for _, phase := range []string{"read", "append"} {
		t.Run(phase, func(t *testing.T) {
			ctx := context.Background()
			c := openT(t, t.TempDir())
			on := c.Source("s", providers.ByteOrder).Indexed(true)
			bs := on.b.(*boltSource)
			bs.build = buildKnobs{readN: 100, txKeys: 100}
			if err := on.DeferIndexes(ctx); err != nil {
				t.Fatal(err)
			}
			importN(t, on, 0, 1000, 0)
			off := c.Source("s", providers.ByteOrder)
			bs.build.step = func(p string) error {
				if p == phase {
					importN(t, off, 5000, 1, 0)
				}
				return nil
			}
			if _, err := on.BuildIndexes(ctx); !errors.Is(err, errSuperseded) {
				t.Fatalf("BuildIndexes = %v, want errSuperseded", err)
			}
			if st, err := off.IndexState(ctx); err != nil || st != IndexesOff {
				t.Fatalf("state %q, %v", st, err)
			}
		})
	}
}

// Notification commits from other goroutines while the build runs — they
// go through the group commit, and the build's transactions give way to
// them — all end up in the indexes.
func TestIndexBuildUnderConcurrentNotifications(t *testing.T) {
	ctx := context.Background()
	c := openT(t, t.TempDir())
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	s.b.(*boltSource).build = buildKnobs{runBytes: 64 << 10, readN: 500, txKeys: 2000}
	if err := s.DeferIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	for i := 0; i < n; i += 5000 {
		importN(t, s, i, 5000, 0)
	}
	stop := make(chan struct{})
	type result struct {
		commits int
		err     error
	}
	results := make(chan result, 4)
	for g := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			var r result
			defer func() { results <- r }()
			for gen := 1; ; gen++ {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(n + 1000)
				m := Mutation{Object: ixObj(i, gen*4+g), Origin: Notification}
				if rng.IntN(4) == 0 {
					m = Mutation{Object: providers.Object{Key: ixObj(i, 0).Key}, Delete: true, Origin: Notification}
				}
				if _, r.err = s.Commit(ctx, []Mutation{m}); r.err != nil {
					return
				}
				r.commits++
			}
		}()
	}
	_, err := s.BuildIndexes(ctx)
	close(stop)
	total := 0
	for range 4 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		total += r.commits
	}
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 {
		t.Fatal("no notification committed during the build")
	}
	t.Logf("%d notification commits during the build", total)
	wantIndexes(t, c, s)
}
