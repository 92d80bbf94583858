package assetsource_test

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// A text query answers the same through the search blocks (an indexed
// source) as through the pass (the same objects without indexes), and
// both agree with a plain filter: rel key contains the folded query. Keys
// are random over case orbits, non-ASCII and supplementary letters, under a
// prefix the query may also match (which must not count).
func TestSearchDifferential(t *testing.T) {
	frags := []string{"a", "B", "é", "É", "ß", "K", "k", "\u212A", "s", "ſ", "Σ", "σ", "ς", "𐐀", "𐐨", "😀",
		"/", "-", "pre", "PRE", "x", "needle", "Needle"}
	rng := rand.New(rand.NewPCG(1, 2))
	const prefix = "pre"
	cat, err := catalog.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	blocks := cat.Source("blocks", providers.UTF16Order).Indexed(true)
	pass := cat.Source("pass", providers.UTF16Order)
	var keys []string
	for range 4 {
		var muts []catalog.Mutation
		for range 1000 {
			var b strings.Builder
			fmt.Fprintf(&b, "%s/g%d/", prefix, rng.IntN(5))
			for range 1 + rng.IntN(5) {
				b.WriteString(frags[rng.IntN(len(frags))])
			}
			keys = append(keys, b.String())
			muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: randomObject(rng, b.String())})
		}
		// Updates of earlier keys: new sizes and times (some unknown), which
		// the search blocks must follow.
		for range 300 {
			if k := keys[rng.IntN(len(keys))]; len(keys) > 1000 {
				muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: randomObject(rng, k)})
			}
		}
		for _, s := range []*catalog.Source{blocks, pass} {
			if _, err := s.Commit(t.Context(), muts); err != nil {
				t.Fatal(err)
			}
		}
	}
	objs := map[string]catalog.Entry{}
	err = pass.Range(t.Context(), "", func(e catalog.Entry) error { objs[e.Key] = e; return nil })
	if err != nil {
		t.Fatal(err)
	}
	queries := []string{"pre", "PRE", "k", "ss", "σ", "𐐨", "g1/", "needle", "/", "zz"}
	for range 30 {
		k := []rune(keys[rng.IntN(len(keys))])
		i := rng.IntN(len(k))
		queries = append(queries, string(k[i:min(len(k), i+1+rng.IntN(5))]))
	}
	shapes := []string{"", "&sortKey=key&sortingOrder=Ascending", "&sortKey=size&page=1&perPage=7", "&groups=g2,g3", "&tags=g4&sortKey=name",
		"&sortKey=key&sortingOrder=Ascending&after=", "&page=2&perPage=5", "&sortKey=lastModified&sortingOrder=Ascending&perPage=20",
		"&sortKey=size&sortingOrder=Descending&perPage=30", "&sortKey=name&sortingOrder=Descending&page=1&perPage=9",
		"&sortKey=key&sortingOrder=Descending&perPage=11", "&excludeGroups=g0&sortKey=size"}
	for _, text := range queries {
		f := catalog.Fold(text)
		total := 0
		seen := map[string]bool{}
		for _, k := range keys {
			r := strings.TrimPrefix(strings.TrimPrefix(k, prefix), "/")
			if !seen[k] && catalog.ContainsFold(r, f) {
				total++
			}
			seen[k] = true
		}
		for _, shape := range shapes {
			v, err := url.ParseQuery("query=" + url.QueryEscape(text) + shape)
			if err != nil {
				t.Fatal(err)
			}
			q, err := assetsource.ParseQuery(v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := assetsource.Run(t.Context(), blocks, providers.UTF16Order, prefix, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := assetsource.Run(t.Context(), pass, providers.UTF16Order, prefix, q)
			if err != nil {
				t.Fatal(err)
			}
			if got.Total != want.Total || got.More != want.More || !slices.EqualFunc(got.Entries, want.Entries, sameEntry) {
				t.Errorf("query %q%s: blocks %d %q, pass %d %q", text, shape, got.Total, entryKeys(got), want.Total, entryKeys(want))
			}
			if shape == "" && want.Total != total {
				t.Errorf("query %q: total %d, want %d", text, want.Total, total)
			}
			if refKeys, refTotal := reference(objs, prefix, q); refTotal != want.Total || !slices.Equal(refKeys, entryKeys(want)) {
				t.Errorf("query %q%s: pass %d %q, reference %d %q", text, shape, want.Total, entryKeys(want), refTotal, refKeys)
			}
		}
	}
}

func entryKeys(r assetsource.Result) []string {
	out := make([]string, len(r.Entries))
	for i, e := range r.Entries {
		out[i] = e.Key
	}
	return out
}

// randomObject is key with a size and a time drawn from small ranges, so
// that the orders have ties to break, and one in six without a time.
func randomObject(rng *rand.Rand, key string) providers.Object {
	o := providers.Object{Key: key, ETag: fmt.Sprint(rng.IntN(1000)), Size: int64(rng.IntN(100))}
	if rng.IntN(6) != 0 {
		o.LastModified = time.Unix(1_700_000_000+int64(rng.IntN(200)), int64(rng.IntN(3))).UTC()
	}
	return o
}

func sameEntry(a, b catalog.Entry) bool {
	return a.Key == b.Key && a.Seq == b.Seq && a.Size == b.Size && a.ETag == b.ETag && a.LastModified.Equal(b.LastModified)
}
