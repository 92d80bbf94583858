package catalogtest

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// assetObjects are keys with ties in every index and an unknown time.
func assetObjects() []providers.Object {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	return []providers.Object{
		{Key: "b/z.png", Size: 5, ETag: "1", LastModified: at(3)},
		{Key: "a/y.png", Size: 1, ETag: "2", LastModified: at(1)},
		{Key: "c/x.png", Size: 9, ETag: "3", LastModified: at(2)},
		{Key: "a b", Size: 9, ETag: "4", LastModified: at(2)},
		{Key: "d/y.png", Size: 1, ETag: "5"},
		{Key: "neg", Size: -1, ETag: "6", LastModified: time.Unix(-5, 0).UTC()},
	}
}

func fill(t *testing.T, s *catalog.Source) []providers.Object {
	objs := assetObjects()
	var muts []catalog.Mutation
	for _, o := range objs {
		muts = append(muts, scan(o))
	}
	commit(t, s, muts...)
	return objs
}

func view(t *testing.T, s *catalog.Source, fn func(*catalog.Snapshot) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

func collect(fn func(func(catalog.Entry) error) error) ([]string, error) {
	var out []string
	err := fn(func(e catalog.Entry) error {
		out = append(out, e.Key)
		return nil
	})
	return out, err
}

// A snapshot's Seq, Count and entries agree, and prefix ranges are bounded.
func testView(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	view(t, s, func(sn *catalog.Snapshot) error {
		if sn.Seq != 0 || sn.Count != 0 {
			t.Errorf("empty source snapshot seq %d count %d", sn.Seq, sn.Count)
		}
		if _, ok, err := sn.Get("a"); ok || err != nil {
			t.Errorf("get on empty: %v %v", ok, err)
		}
		return nil
	})
	fill(t, s)
	commit(t, s, del("neg"), scan(providers.Object{Key: "a/", ETag: "x"}), scan(providers.Object{Key: "a0", ETag: "x"}))
	view(t, s, func(sn *catalog.Snapshot) error {
		all, err := collect(func(fn func(catalog.Entry) error) error { return sn.Range(t.Context(), "", fn) })
		if err != nil {
			return err
		}
		if sn.Seq != 9 || sn.Count != uint64(len(all)) || len(all) != 7 {
			t.Errorf("snapshot seq %d count %d, %d entries", sn.Seq, sn.Count, len(all))
		}
		under, err := collect(func(fn func(catalog.Entry) error) error { return sn.Range(t.Context(), "a/", fn) })
		if err != nil {
			return err
		}
		want(t, "prefix a/", under, []string{"a/", "a/y.png"})
		e, ok, err := sn.Get("c/x.png")
		if err != nil || !ok || e.Size != 9 || e.Seq != 3 {
			t.Errorf("get: %+v %v %v", e, ok, err)
		}
		return nil
	})
}

// Walk pages through each index in its order, ties by key, both ways.
func testWalk(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	objs := fill(t, s)
	byKey := func(a, b providers.Object) int { return strings.Compare(a.Key, b.Key) }
	orders := map[catalog.Index]func(a, b providers.Object) int{
		catalog.IndexKey: byKey,
		catalog.IndexLastModified: func(a, b providers.Object) int {
			return cmp.Or(cmp.Compare(mtime(a), mtime(b)), byKey(a, b))
		},
		catalog.IndexSize: func(a, b providers.Object) int { return cmp.Or(cmp.Compare(a.Size, b.Size), byKey(a, b)) },
		catalog.IndexName: func(a, b providers.Object) int {
			return cmp.Or(strings.Compare(path.Base(a.Key), path.Base(b.Key)), byKey(a, b))
		},
	}
	view(t, s, func(sn *catalog.Snapshot) error {
		if !sn.Indexed() {
			t.Fatal("an indexed source's snapshot is not Indexed")
		}
		for ix, order := range orders {
			sorted := slices.Clone(objs)
			slices.SortFunc(sorted, order)
			var wantKeys []string
			for _, o := range sorted {
				wantKeys = append(wantKeys, o.Key)
			}
			for _, desc := range []bool{false, true} {
				w := slices.Clone(wantKeys)
				if desc {
					slices.Reverse(w)
				}
				got, err := collect(func(fn func(catalog.Entry) error) error { return sn.Walk(t.Context(), ix, desc, 2, fn) })
				if err != nil {
					return err
				}
				want(t, "walk", got, w[2:])
				n := 0
				if err := sn.Walk(t.Context(), ix, desc, 0, func(catalog.Entry) error {
					n++
					return catalog.ErrStop
				}); err != nil || n != 1 {
					t.Errorf("walk ErrStop: n=%d %v", n, err)
				}
			}
		}
		return nil
	})
}

// mtime orders unknown times first.
func mtime(o providers.Object) int64 {
	if o.LastModified.IsZero() {
		return -1 << 63
	}
	return o.LastModified.UnixNano()
}

// RangeMatch hands the filter every key and fn only the matches, in order.
func testMatch(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.UTF16Order)
	objs := fill(t, s)
	commit(t, s, scan(providers.Object{Key: "y/\U0001F600.png", ETag: "x"}), scan(providers.Object{Key: "y/\uFF5E.png", ETag: "x"}))
	view(t, s, func(sn *catalog.Snapshot) error {
		seen := 0
		got, err := collect(func(fn func(catalog.Entry) error) error {
			return sn.RangeMatch(t.Context(), func(k []byte) bool {
				seen++
				return strings.Contains(string(k), "y")
			}, fn)
		})
		if err != nil {
			return err
		}
		want(t, "match", got, []string{"a/y.png", "d/y.png", "y/\U0001F600.png", "y/\uFF5E.png"})
		if seen != len(objs)+2 {
			t.Errorf("filter saw %d keys, want %d", seen, len(objs)+2)
		}
		all, err := collect(func(fn func(catalog.Entry) error) error { return sn.RangeAfter(t.Context(), "", nil, fn) })
		if err != nil {
			return err
		}
		if len(all) != len(objs)+2 {
			t.Fatalf("RangeAfter from the start: %q", all)
		}
		i := slices.Index(all, "y/\U0001F600.png")
		after, err := collect(func(fn func(catalog.Entry) error) error {
			return sn.RangeAfter(t.Context(), all[i], nil, fn)
		})
		if err != nil {
			return err
		}
		want(t, "after a key", after, all[i+1:])
		got, err = collect(func(fn func(catalog.Entry) error) error {
			return sn.RangeAfter(t.Context(), "a/y.png", func(k []byte) bool { return strings.Contains(string(k), "y") }, fn)
		})
		if err != nil {
			return err
		}
		want(t, "after a key, matching", got, []string{"d/y.png", "y/\U0001F600.png", "y/\uFF5E.png"})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_ = sn.RangeMatch(ctx, func([]byte) bool { return true }, func(catalog.Entry) error { return nil })
		return nil
	})
}

// Long ranges and walks (more entries than a backend reads at once) keep
// their order, lose nothing and repeat nothing.
func testLong(t *testing.T, c *catalog.Catalog) {
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	const n = 20_000
	var muts []catalog.Mutation
	var all []string
	for i := range n {
		k := fmt.Sprintf("k%06d", (i*7919)%n)
		muts = append(muts, scan(providers.Object{Key: k, ETag: "e", Size: int64(i % 10), LastModified: t0}))
		all = append(all, k)
	}
	commit(t, s, muts...)
	slices.Sort(all)
	want(t, "range", keys(t, s, ""), all)
	want(t, "range after", keys(t, s, all[4999]), all[5000:])
	view(t, s, func(sn *catalog.Snapshot) error {
		got, err := collect(func(fn func(catalog.Entry) error) error {
			return sn.Walk(t.Context(), catalog.IndexKey, false, 1000, fn)
		})
		if err != nil {
			return err
		}
		want(t, "walk", got, all[1000:])
		got, err = collect(func(fn func(catalog.Entry) error) error { return sn.Range(t.Context(), "k010", fn) })
		if err != nil {
			return err
		}
		want(t, "prefix", got, all[10000:11000])
		got, err = collect(func(fn func(catalog.Entry) error) error { return sn.RangeAfter(t.Context(), all[9999], nil, fn) })
		if err != nil {
			return err
		}
		want(t, "after", got, all[10000:])
		got, err = collect(func(fn func(catalog.Entry) error) error {
			return sn.RangeMatch(t.Context(), func(k []byte) bool { return k[len(k)-1] == '7' }, fn)
		})
		if err != nil || len(got) != n/10 || !slices.IsSorted(got) {
			t.Errorf("match: %d keys, sorted %v, %v", len(got), slices.IsSorted(got), err)
		}
		return nil
	})
}

// A source committed without indexes has none; committed with them again,
// every entry is back in them.
func testIndexToggle(t *testing.T, c *catalog.Catalog) {
	on := c.Source("s", providers.ByteOrder).Indexed(true)
	objs := fill(t, on)
	off := c.Source("s", providers.ByteOrder)
	commit(t, off, scan(obj("zz", 1)))
	view(t, off, func(sn *catalog.Snapshot) error {
		if sn.Indexed() {
			t.Error("indexes kept by a commit without them")
		}
		return nil
	})
	commit(t, on, scan(obj("zy", 1)))
	view(t, on, func(sn *catalog.Snapshot) error {
		if !sn.Indexed() {
			t.Fatal("no indexes after an indexed commit")
		}
		got, err := collect(func(fn func(catalog.Entry) error) error { return sn.Walk(t.Context(), catalog.IndexSize, false, 0, fn) })
		if err != nil || len(got) != len(objs)+2 {
			t.Errorf("size index holds %d entries (%v), want %d", len(got), err, len(objs)+2)
		}
		return nil
	})
}
