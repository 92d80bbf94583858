package assetsource_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/catalog/pgcatalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// paging is a real backend seen through a View that offers the snapshot's
// page query (catalog.Pager) or hides it, so that one catalog answers the
// same query both through the pushdown and through the existing path. It
// counts the pages the backend answered.
type paging struct {
	catalog.Backend
	pager bool
	pages *atomic.Int64
}

func (p paging) Source(id string, order providers.Order, indexed bool) catalog.SourceBackend {
	return pagingSource{p.Backend.Source(id, order, indexed), p}
}

type pagingSource struct {
	catalog.SourceBackend
	p paging
}

func (s pagingSource) View(ctx context.Context, fn func(*catalog.Snapshot) error) error {
	return s.SourceBackend.View(ctx, func(sn *catalog.Snapshot) error {
		var r catalog.SnapshotReader = plainReader{sn}
		if s.p.pager {
			r = pagerReader{plainReader{sn}, s.p.pages}
		}
		return fn(catalog.NewSnapshot(sn.Seq, sn.Count, r))
	})
}

// plainReader is the snapshot's reader with its search (a Searcher) and
// without its page query.
type plainReader struct{ sn *catalog.Snapshot }

func (r plainReader) Get(key string) (catalog.Entry, bool, error) { return r.sn.Get(key) }
func (r plainReader) Indexed() bool                               { return r.sn.Indexed() }
func (r plainReader) Range(ctx context.Context, prefix string, fn func(catalog.Entry) error) error {
	return r.sn.Range(ctx, prefix, fn)
}
func (r plainReader) RangeMatch(ctx context.Context, match func([]byte) bool, fn func(catalog.Entry) error) error {
	return r.sn.RangeMatch(ctx, match, fn)
}
func (r plainReader) Walk(ctx context.Context, ix catalog.Index, desc bool, skip int, fn func(catalog.Entry) error) error {
	return r.sn.Walk(ctx, ix, desc, skip, fn)
}
func (r plainReader) RangeAfter(ctx context.Context, key string, match func([]byte) bool, fn func(catalog.Entry) error) error {
	return r.sn.RangeAfter(ctx, key, match, fn)
}
func (r plainReader) Search(ctx context.Context, text string, match func([]byte) bool, fn func(catalog.Entry) error) (bool, error) {
	return true, r.sn.Search(ctx, text, match, fn)
}

type pagerReader struct {
	plainReader
	pages *atomic.Int64
}

func (r pagerReader) Page(ctx context.Context, q catalog.PageQuery) ([]catalog.Entry, int, bool, error) {
	page, total, ok, err := r.sn.Page(ctx, q)
	if ok {
		r.pages.Add(1)
	}
	return page, total, ok, err
}

// openPostgres opens the catalog at dsn twice: through the page query and
// without it.
func openPostgres(t testing.TB, dsn string) (push, plain *catalog.Catalog, pages *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cat, err := pgcatalog.Open(ctx, dsn, pgcatalog.Options{})
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	t.Cleanup(func() { cat.Close() })
	pages = &atomic.Int64{}
	b := catalog.BackendOf(cat)
	return catalog.New(paging{b, true, pages}), catalog.New(paging{b, false, pages}), pages
}

// The pushdown answers every query as the existing path does on the same
// PostgreSQL catalog — same assets in the same order, same total, same
// seq — over random queries: non-ASCII names, ties in time and size,
// groups and excluded groups, tags (which fall back), every sort in both
// orders, deep pages; byte and UTF-16 order, with and without indexes.
func TestPushdownDifferential(t *testing.T) {
	pg := testkit.StartPostgres(t)
	push, plain, pages := openPostgres(t, pg.NewDatabase(t))
	frags := []string{"a", "B", "é", "É", "ß", "K", "\u212A", "s", "ſ", "Σ", "ς", "𐐀", "𐐨", "😀", "/", "-", "pre", "x", "needle", "Needle"}
	groups := []string{"g0", "g1", "G1", "é", "needle"}
	const prefix = "pre"
	for _, order := range []providers.Order{providers.ByteOrder, providers.UTF16Order} {
		for _, indexed := range []bool{true, false} {
			id := fmt.Sprintf("s-%v-%v", order, indexed)
			rng := rand.New(rand.NewPCG(7, 8))
			var keys []string
			var muts []catalog.Mutation
			for i := range 1500 {
				var b strings.Builder
				b.WriteString([]string{prefix + "/", prefix + "//", prefix}[rng.IntN(3)])
				if rng.IntN(6) > 0 {
					b.WriteString(groups[rng.IntN(len(groups))] + "/")
				}
				for range 1 + rng.IntN(5) {
					b.WriteString(frags[rng.IntN(len(frags))])
				}
				keys = append(keys, b.String())
				muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: providers.Object{Key: b.String(), ETag: fmt.Sprint(i),
					Size: int64(rng.IntN(5)), LastModified: time.Unix(1_700_000_000+int64(rng.IntN(9))*60, 0)}})
			}
			if _, err := push.Source(id, order).Indexed(indexed).Commit(t.Context(), muts); err != nil {
				t.Fatal(err)
			}
			a, b := push.Source(id, order).Indexed(indexed), plain.Source(id, order).Indexed(indexed)
			t.Run(id, func(t *testing.T) { compareQueries(t, a, b, order, prefix, keys, rng) })
		}
	}
	if pages.Load() == 0 {
		t.Fatal("no query went through the pushdown")
	}
	t.Logf("%d pages answered by the pushdown", pages.Load())
}

func compareQueries(t *testing.T, push, plain *catalog.Source, order providers.Order, prefix string, keys []string, rng *rand.Rand) {
	shapes := []string{"", "sortKey=key&sortingOrder=Ascending", "sortKey=key&sortingOrder=Descending", "sortKey=name",
		"sortKey=name&sortingOrder=Descending", "sortKey=size", "sortKey=size&sortingOrder=Descending",
		"sortKey=lastModified&sortingOrder=Ascending", "tags=g1"}
	filters := []string{"", "groups=g1", "groups=g1,é", "excludeGroups=g0,needle", "groups=G1&excludeGroups=g1", "groups=x/y", "groups=needle"}
	for range 400 {
		v, err := url.ParseQuery(shapes[rng.IntN(len(shapes))] + "&" + filters[rng.IntN(len(filters))])
		if err != nil {
			t.Fatal(err)
		}
		switch rng.IntN(3) {
		case 0:
			k := []rune(keys[rng.IntN(len(keys))])
			i := rng.IntN(len(k))
			v.Set("query", string(k[i:min(len(k), i+1+rng.IntN(5))]))
		case 1:
			v.Set("query", []string{"NEEDLE", "k", "ss", "σ", "pre", "/", "e/", "zz"}[rng.IntN(8)])
		}
		v.Set("perPage", fmt.Sprint(1+rng.IntN(40)))
		v.Set("page", fmt.Sprint(rng.IntN(6)))
		q, err := assetsource.ParseQuery(v)
		if err != nil {
			t.Fatalf("%s: %v", v.Encode(), err)
		}
		got, err := assetsource.Run(t.Context(), push, order, prefix, q)
		if err != nil {
			t.Fatalf("%s: pushdown: %v", v.Encode(), err)
		}
		want, err := assetsource.Run(t.Context(), plain, order, prefix, q)
		if err != nil {
			t.Fatalf("%s: existing path: %v", v.Encode(), err)
		}
		if got.Total != want.Total || got.Seq != want.Seq || !slices.Equal(pushedKeys(got.Entries), pushedKeys(want.Entries)) {
			t.Errorf("%s: total %d seq %d %q; want total %d seq %d %q", v.Encode(), got.Total, got.Seq, pushedKeys(got.Entries),
				want.Total, want.Seq, pushedKeys(want.Entries))
		}
	}
}

func pushedKeys(es []catalog.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Key)
	}
	return out
}
