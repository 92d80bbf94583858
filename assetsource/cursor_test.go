package assetsource_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

func TestCursorLocal(t *testing.T) { testCursor(t, newLocal(t)) }

// Azure lists in UTF-16 order: the cursor must seek by the same sort key.
func TestCursorAzure(t *testing.T) { testCursor(t, newAzure(t)) }

// testCursor: keyset paging (after=) walks the whole source in key order
// while keys are inserted and deleted behind and ahead of the cursor: every
// key present throughout is seen exactly once, keys inserted ahead are seen,
// keys deleted ahead are not, and order holds across pages.
func testCursor(t *testing.T, st *store) {
	keys := []string{"a.png", "b/é.png", "b/z.png", "c😀.png", "c！.png", "d/e/f.png"}
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("m/%03d.png", i))
	}
	for _, k := range keys {
		st.put(t, k, []byte(k), "image/png")
	}
	a := serve(t, st, apiOpts{open: true})
	a.scan(t)
	order := st.p.Order()
	slices.SortFunc(keys, order.Compare)

	// Without writes: the pages are the listing, in order, once.
	got := cursorAll(t, a, 7, nil)
	if !slices.Equal(got, keys) {
		t.Fatalf("cursor pages:\n%q\nwant the listing:\n%q", got, keys)
	}

	// With writes between pages: the first page ends at m/006; then a key
	// behind the cursor and one ahead are deleted, one behind and two ahead
	// are inserted.
	ctx := context.Background()
	commit := func(muts ...catalog.Mutation) {
		t.Helper()
		if _, err := a.src.Commit(ctx, muts); err != nil {
			t.Fatal(err)
		}
	}
	add := func(k string) catalog.Mutation {
		return catalog.Mutation{Object: providers.Object{Key: k, Size: 1, ETag: k}, Origin: catalog.Notification}
	}
	del := func(k string) catalog.Mutation {
		return catalog.Mutation{Object: providers.Object{Key: k}, Delete: true, Origin: catalog.Notification}
	}
	first := true
	got = cursorAll(t, a, 10, func() {
		if !first {
			return
		}
		first = false
		commit(del("a.png"), del("m/030.png"), add("0-behind.png"), add("m/020b.png"), add("zz-ahead.png"))
	})
	var want []string
	for _, k := range keys {
		if k != "m/030.png" {
			want = append(want, k)
		}
	}
	want = append(want, "m/020b.png", "zz-ahead.png")
	slices.SortFunc(want, order.Compare)
	if !slices.Equal(got, want) {
		t.Fatalf("cursor pages under writes:\n%q\nwant (a.png was seen before its delete, 0-behind.png is behind):\n%q", got, want)
	}

	// Each asset names the sequence of its state.
	r := a.get(t, "/sources/media/assets?"+url.Values{"sortKey": {"key"}, "after": {""}, "perPage": {"1000"}}.Encode())
	p := decode[assetsource.Page](t, r)
	for _, as := range p.Assets {
		e, ok, err := a.src.Get(ctx, as.Meta["key"].(string))
		if err != nil || !ok {
			t.Fatalf("get %v: %v %v", as.Meta["key"], ok, err)
		}
		if as.Meta["seq"] != strconv.FormatUint(e.Seq, 10) {
			t.Fatalf("%v: meta.seq %v, catalog seq %d", as.Meta["key"], as.Meta["seq"], e.Seq)
		}
	}
	if p.After != "" || p.NextPage != nil {
		t.Fatalf("a last page names a next one: after %q, nextPage %v", p.After, p.NextPage)
	}
	if p.Total != len(want) { // a.png gone, 0-behind.png there
		t.Fatalf("total %d, want %d", p.Total, len(want))
	}

	// Filters apply to cursor pages too, and total counts the matches.
	r = a.get(t, "/sources/media/assets?"+url.Values{"sortKey": {"key"}, "after": {""}, "groups": {"b"}}.Encode())
	p = decode[assetsource.Page](t, r)
	if ks := keysOf(p.Assets); !slices.Equal(ks, []string{"b/z.png", "b/é.png"}) || p.Total != 2 {
		t.Fatalf("groups=b by cursor: %q total %d", ks, p.Total)
	}

	for _, bad := range []url.Values{
		{"sortKey": {"name"}, "after": {""}},
		{"sortKey": {"key"}, "sortingOrder": {"Descending"}, "after": {""}},
		{"sortKey": {"key"}, "page": {"2"}, "after": {""}},
		{"sortKey": {"key"}, "after": {"!!"}},
	} {
		must(t, a.get(t, "/sources/media/assets?"+bad.Encode()), 400)
	}
}

// cursorAll pages a source by cursor, calling between (if set) after each
// page, and returns the keys in the order served.
func cursorAll(t *testing.T, a *api, perPage int, between func()) []string {
	t.Helper()
	var keys []string
	after := ""
	for range 1000 {
		v := url.Values{"sortKey": {"key"}, "sortingOrder": {"Ascending"}, "perPage": {strconv.Itoa(perPage)}, "after": {after}}
		p := decode[assetsource.Page](t, a.get(t, "/sources/media/assets?"+v.Encode()))
		keys = append(keys, keysOf(p.Assets)...)
		if p.NextPage == nil {
			if p.After != "" {
				t.Fatalf("last page has after %q", p.After)
			}
			return keys
		}
		if len(p.Assets) != perPage || p.After != p.Assets[len(p.Assets)-1].ID {
			t.Fatalf("a page of %d assets with after %q", len(p.Assets), p.After)
		}
		after = p.After
		if between != nil {
			between()
		}
	}
	t.Fatal("no last page")
	return nil
}
