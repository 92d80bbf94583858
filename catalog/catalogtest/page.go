package catalogtest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// testPage checks Snapshot.Page, where a backend answers it (a Pager),
// against a reference over every entry: the same entries in the same
// order and the same total, over random queries with non-ASCII keys, ties
// in every order, groups, excluded groups and prefixes; then again with a
// key outside the prefix, which a backend must answer exactly or decline.
func testPage(t *testing.T, c *catalog.Catalog) {
	for _, order := range []providers.Order{providers.UTF16Order, providers.ByteOrder} {
		for _, indexed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%v/indexed=%v", order, indexed), func(t *testing.T) {
				s := c.Source(fmt.Sprintf("p-%v-%v", order, indexed), order).Indexed(indexed)
				testPageSource(t, s, order)
			})
		}
	}
}

var pageGroups = []string{"d0", "d1", "D1", "d2", "é", "", "x/y", "nope"}

func testPageSource(t *testing.T, s *catalog.Source, order providers.Order) {
	rng := rand.New(rand.NewPCG(56, 78))
	var muts []catalog.Mutation
	seen := map[string]bool{}
	for i := range 400 {
		var b strings.Builder
		b.WriteString([]string{"pre/", "pre//", "pre", "pre/"}[rng.IntN(4)])
		if rng.IntN(5) > 0 {
			b.WriteString(pageGroups[rng.IntN(5)] + "/")
		}
		for range 1 + rng.IntN(5) {
			b.WriteString(searchFragments[rng.IntN(len(searchFragments))])
		}
		k := b.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		// Few distinct times and sizes: ties everywhere, broken by key.
		o := providers.Object{Key: k, ETag: fmt.Sprint(i), Size: int64(rng.IntN(4)), LastModified: t0.Add(time.Duration(rng.IntN(5)) * time.Hour)}
		if rng.IntN(20) == 0 {
			o.LastModified = time.Time{}
		}
		muts = append(muts, scan(o))
	}
	commit(t, s, muts...)
	handled := checkPages(t, s, order, rng)
	t.Logf("%d of the queries answered by the backend", handled)
	commit(t, s, scan(obj("outside/d1/x", 1)))
	checkPages(t, s, order, rng)
}

// checkPages compares a few hundred random pages and returns how many the
// backend answered.
func checkPages(t *testing.T, s *catalog.Source, order providers.Order, rng *rand.Rand) int {
	t.Helper()
	handled := 0
	view(t, s, func(sn *catalog.Snapshot) error {
		var all []catalog.Entry
		if err := sn.RangeAfter(t.Context(), "", nil, func(e catalog.Entry) error { all = append(all, e); return nil }); err != nil {
			return err
		}
		for range 300 {
			q := randomPage(rng, all)
			got, total, ok, err := sn.Page(t.Context(), q)
			if err != nil {
				return fmt.Errorf("page %+v: %w", q, err)
			}
			if !ok {
				continue
			}
			handled++
			want, wantTotal := referencePage(all, order, q)
			if total != wantTotal || !slices.Equal(pageKeys(got), pageKeys(want)) {
				t.Errorf("page %+v: total %d, want %d; keys %q, want %q", q, total, wantTotal, pageKeys(got), pageKeys(want))
			}
		}
		return nil
	})
	return handled
}

func randomPage(rng *rand.Rand, all []catalog.Entry) catalog.PageQuery {
	q := catalog.PageQuery{Prefix: []string{"", "pre", "pre/"}[rng.IntN(3)],
		Sort: catalog.Index(rng.IntN(4)), Desc: rng.IntN(2) == 0, Offset: rng.IntN(60), Limit: 1 + rng.IntN(25)}
	switch rng.IntN(4) {
	case 0:
		q.Text = catalog.Fold(searchFragments[rng.IntN(len(searchFragments))])
	case 1:
		k := []rune(all[rng.IntN(len(all))].Key)
		i := rng.IntN(len(k))
		q.Text = catalog.Fold(string(k[i:min(len(k), i+1+rng.IntN(4))]))
	}
	pick := func() []string {
		var gs []string
		for range rng.IntN(3) {
			gs = append(gs, pageGroups[rng.IntN(len(pageGroups))])
		}
		return gs
	}
	if rng.IntN(3) == 0 {
		q.Groups = pick()
	}
	if rng.IntN(3) == 0 {
		q.ExcludeGroups = pick()
	}
	return q
}

// referencePage is PageQuery's meaning, spelled out over every entry.
func referencePage(all []catalog.Entry, order providers.Order, q catalog.PageQuery) ([]catalog.Entry, int) {
	var hits []catalog.Entry
	for _, e := range all {
		rel := strings.TrimPrefix(strings.TrimPrefix(e.Key, q.Prefix), "/")
		g, _, inFolder := strings.Cut(rel, "/")
		if !inFolder {
			g = "" // a file at the top
		}
		if q.Text != "" && !strings.Contains(catalog.Fold(rel), q.Text) ||
			len(q.Groups) > 0 && (g == "" || !slices.Contains(q.Groups, g)) ||
			g != "" && slices.Contains(q.ExcludeGroups, g) {
			continue
		}
		hits = append(hits, e)
	}
	slices.SortFunc(hits, func(a, b catalog.Entry) int {
		c := 0
		switch q.Sort {
		case catalog.IndexLastModified:
			c = a.LastModified.Compare(b.LastModified)
		case catalog.IndexSize:
			c = cmp.Compare(a.Size, b.Size)
		case catalog.IndexName:
			c = strings.Compare(path.Base(a.Key), path.Base(b.Key))
		}
		if c == 0 {
			c = order.Compare(a.Key, b.Key)
		}
		if q.Desc {
			return -c
		}
		return c
	})
	if q.Offset >= len(hits) {
		return nil, len(hits)
	}
	return hits[q.Offset:min(len(hits), q.Offset+q.Limit)], len(hits)
}

func pageKeys(es []catalog.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}
