package catalogtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// Fragments of generated keys: case pairs in and beyond ASCII, orbits of
// three (K k Kelvin, s S ſ, Σ σ ς), supplementary letters with case
// (Deseret 𐐀/𐐨) and without (😀), and the separators of groups.
var searchFragments = []string{"a", "B", "é", "É", "ß", "ẞ", "K", "k", "\u212A", "s", "S", "ſ",
	"Σ", "σ", "ς", "𐐀", "𐐨", "😀", "/", "-", "x", "ab", "cd", "\uFF5E"}

// testSearch checks Search against the pass it stands for (every key
// whose fold contains the text) over a few thousand keys — enough for
// many blocks — through adds, deletes, renames and an index toggle.
func testSearch(t *testing.T, c *catalog.Catalog) {
	for _, order := range []providers.Order{providers.UTF16Order, providers.ByteOrder} {
		t.Run(order.String(), func(t *testing.T) { testSearchOrder(t, c, order) })
	}
}

func testSearchOrder(t *testing.T, c *catalog.Catalog, order providers.Order) {
	rng := rand.New(rand.NewPCG(12, 34))
	id := "s-" + order.String()
	on := c.Source(id, order).Indexed(true)
	keys := map[string]bool{}
	newKey := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "d%d/", rng.IntN(7))
		for range 1 + rng.IntN(6) {
			b.WriteString(searchFragments[rng.IntN(len(searchFragments))])
		}
		return b.String()
	}
	add := func(s *catalog.Source, n int) {
		var muts []catalog.Mutation
		for range n {
			k := newKey()
			keys[k] = true
			muts = append(muts, scan(obj(k, 1)))
		}
		commit(t, s, muts...)
	}
	remove := func(s *catalog.Source, n int, rename bool) {
		var muts []catalog.Mutation
		for k := range keys {
			if len(muts) == n {
				break
			}
			delete(keys, k)
			muts = append(muts, del(k))
			if rename {
				nk := k + "-Renamed"
				keys[nk] = true
				muts = append(muts, scan(obj(nk, 2)))
			}
		}
		commit(t, s, muts...)
	}
	// update changes the size and mtime of n keys (and, one in three, only
	// the ETag, which the blocks do not hold): the hits' fields must follow.
	update := func(s *catalog.Source, n int) {
		var muts []catalog.Mutation
		for k := range keys {
			if len(muts) == n {
				break
			}
			o := obj(k, 3+rng.IntN(1000))
			if len(muts)%3 == 0 {
				o = obj(k, 1)
				o.ETag = fmt.Sprintf("e%d", 2000+rng.IntN(1000))
			}
			if len(muts)%5 == 0 {
				o.LastModified = time.Time{} // unknown
			}
			muts = append(muts, scan(o))
		}
		commit(t, s, muts...)
	}
	for range 6 {
		add(on, 500)
	}
	checkSearch(t, on, keys, rng)
	remove(on, 700, false)
	add(on, 300)
	remove(on, 300, true)
	update(on, 600)
	checkSearch(t, on, keys, rng)
	off := c.Source(id, order)
	remove(off, 100, true)
	update(off, 300)
	checkSearch(t, off, keys, rng)
	add(on, 10) // rebuilt from the objects
	update(on, 300)
	remove(on, 2000, false)
	checkSearch(t, on, keys, rng)
}

func checkSearch(t *testing.T, s *catalog.Source, keys map[string]bool, rng *rand.Rand) {
	t.Helper()
	all := make([]string, 0, len(keys))
	for k := range keys {
		all = append(all, k)
	}
	queries := []string{"k", "\u212A", "ſ", "ss", "σ", "𐐨", "😀", "d3/", "bc", "ab", "abcd", "x/", "/", "-renamed", "zz"}
	for range 25 {
		k := []rune(all[rng.IntN(len(all))])
		i := rng.IntN(len(k))
		queries = append(queries, string(k[i:min(len(k), i+1+rng.IntN(4))]))
	}
	inGroup := func(k []byte) bool { return !strings.HasPrefix(string(k), "d1/") }
	view(t, s, func(sn *catalog.Snapshot) error {
		var entries []catalog.Entry
		err := sn.RangeAfter(t.Context(), "", nil, func(e catalog.Entry) error { entries = append(entries, e); return nil })
		if err != nil {
			return err
		}
		everything := make([]string, len(entries))
		for i := range entries {
			everything[i] = entries[i].Key
		}
		slices.Sort(all)
		sorted := slices.Clone(everything)
		slices.Sort(sorted)
		if !slices.Equal(sorted, all) {
			t.Fatalf("catalog holds %d keys, want %d", len(everything), len(all))
		}
		for _, q := range queries {
			f := catalog.Fold(q)
			for _, match := range []func([]byte) bool{nil, inGroup} {
				var want []string
				for _, k := range everything { // in key order
					if catalog.ContainsFold(k, f) && (match == nil || match([]byte(k))) {
						want = append(want, k)
					}
				}
				got, err := collect(func(fn func(catalog.Entry) error) error { return sn.Search(t.Context(), f, match, fn) })
				if err != nil {
					return fmt.Errorf("search %q: %w", q, err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("search %q (filtered %v): %d keys, want %d; first differences %q", q, match != nil, len(got), len(want), firstDiff(got, want))
				}
				if err := checkHits(t, sn, f, match, entries); err != nil {
					return fmt.Errorf("search hits %q: %w", q, err)
				}
			}
		}
		return nil
	})
}

func firstDiff(a, b []string) []string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return []string{a[i], b[i]}
		}
	}
	return nil
}

// checkHits compares SearchHits with the pass: the same keys in the same
// order, each hit with its entry's size and mtime, and HitEntry the entry.
func checkHits(t *testing.T, sn *catalog.Snapshot, f string, match func([]byte) bool, entries []catalog.Entry) error {
	t.Helper()
	var want []catalog.Entry
	for _, e := range entries {
		if catalog.ContainsFold(e.Key, f) && (match == nil || match([]byte(e.Key))) {
			want = append(want, e)
		}
	}
	var got []catalog.Hit
	err := sn.SearchHits(t.Context(), f, match, func(h *catalog.Hit) error {
		got = append(got, h.Clone())
		return nil
	})
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		t.Errorf("search hits %q: %d, want %d", f, len(got), len(want))
		return nil
	}
	for i := range got {
		w := catalog.HitOf(&want[i])
		h := &got[i]
		if string(h.Key) != string(w.Key) || h.Size != w.Size || h.LastModified != w.LastModified {
			t.Errorf("search hits %q, hit %d: %q size %d mtime %d, want %q size %d mtime %d",
				f, i, h.Key, h.Size, h.LastModified, w.Key, w.Size, w.LastModified)
			return nil
		}
		e, err := sn.HitEntry(h)
		if err != nil {
			return err
		}
		if w := want[i]; e.Key != w.Key || e.Seq != w.Seq || e.Size != w.Size || e.ETag != w.ETag || e.Version != w.Version ||
			e.ContentType != w.ContentType || !e.LastModified.Equal(w.LastModified) {
			t.Errorf("search hits %q: entry of %q is %+v, want %+v", f, h.Key, e, want[i])
			return nil
		}
	}
	return nil
}
