package assetsource

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unsafe"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// MaxPerPage caps perPage: a larger value is served as this many.
const MaxPerPage = 1000

// DefaultPerPage is perPage when the parameter is absent.
const DefaultPerPage = 50

// Field is what assets are sorted by.
type Field int

const (
	ByLastModified Field = iota
	ByName
	ByKey
	BySize
)

// Query is a parsed findAssets query.
type Query struct {
	Page, PerPage int
	// Text is the folded query string ("" matches everything).
	Text          string
	Tags          []string
	Groups        []string
	ExcludeGroups []string
	Sort          Field
	Desc          bool
	// After, when Cursor is set, is the key the page starts after: keyset
	// paging in key order, for clients that walk a whole source (page
	// numbers shift under inserts and deletes, and stop at maxOffset).
	After  string
	Cursor bool
}

// ParseQuery reads the plugin's parameters. Every key may be present and
// empty; unknown keys are ignored; a bad value is an error naming it.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{PerPage: DefaultPerPage}
	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, fmt.Errorf("page %q: want a whole number >= 0 (pages are zero-based)", s)
		}
		q.Page = n
	}
	if s := v.Get("perPage"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("perPage %q: want a whole number >= 1", s)
		}
		q.PerPage = min(n, MaxPerPage)
	}
	// The offset must stay addressable: page*perPage entries are held
	// while the page is selected.
	if q.Page > maxOffset/q.PerPage {
		return q, fmt.Errorf("page %d: beyond the last page this API serves (page × perPage ≤ %d)", q.Page, maxOffset)
	}
	q.Text = fold(v.Get("query"))
	q.Tags = list(v.Get("tags"))
	q.Groups = list(v.Get("groups"))
	q.ExcludeGroups = list(v.Get("excludeGroups"))
	switch k := v.Get("sortKey"); k {
	case "", "lastModified":
		q.Sort = ByLastModified
	case "name":
		q.Sort = ByName
	case "key":
		q.Sort = ByKey
	case "size":
		q.Sort = BySize
	default:
		return q, fmt.Errorf(`sortKey %q: want "", "name", "key", "lastModified" or "size"`, k)
	}
	switch o := v.Get("sortingOrder"); o {
	case "", "None":
		// Each key's natural order: newest first for time, A to Z and
		// small to large otherwise.
		q.Desc = q.Sort == ByLastModified
	case "Ascending":
	case "Descending":
		q.Desc = true
	default:
		return q, fmt.Errorf(`sortingOrder %q: want "Ascending", "Descending" or "None"`, o)
	}
	if v.Has("after") {
		if err := q.parseAfter(v); err != nil {
			return q, err
		}
	}
	return q, nil
}

// parseAfter reads the keyset cursor: an asset id, or "" for the first page.
func (q *Query) parseAfter(v url.Values) error {
	if q.Sort != ByKey || q.Desc {
		return fmt.Errorf(`after: only with sortKey "key" in ascending order`)
	}
	if q.Page != 0 {
		return fmt.Errorf("after: page must be 0 (the cursor says where the page starts)")
	}
	q.Cursor = true
	if id := v.Get("after"); id != "" {
		key, ok := KeyOf(id)
		if !ok {
			return fmt.Errorf("after %q: not an asset id of this API", id)
		}
		q.After = key
	}
	return nil
}

// maxOffset bounds page × perPage: a filtered query holds that many
// entries in its heap (unfiltered pages walk an index and hold none).
const maxOffset = 100_000

// list splits a comma-joined parameter, dropping empty items.
func list(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// fold and containsFold are the catalog's folding, which its search blocks
// hold keys in: a query must fold exactly as they were folded.
func fold(s string) string { return catalog.Fold(s) }

func containsFold(s, q string) bool { return catalog.ContainsFold(s, q) }

// rel is key below the source's prefix.
func rel(prefix, key string) string {
	return strings.TrimPrefix(strings.TrimPrefix(key, prefix), "/")
}

// groupOf is the first folder of a relative key, "" for a top-level file.
func groupOf(r string) string {
	if i := strings.IndexByte(r, '/'); i >= 0 {
		return r[:i]
	}
	return ""
}

// tagsOf are the folder names on a relative key's path.
func tagsOf(r string) []string {
	dir := path.Dir(r)
	if dir == "." || dir == "/" {
		return nil
	}
	return strings.Split(dir, "/")
}

// matcher says whether an entry passes a query's filters.
type matcher struct {
	q      *Query
	prefix string
	order  providers.Order
}

func (m matcher) none() bool {
	return m.q.Text == "" && len(m.q.Tags) == 0 && len(m.q.Groups) == 0 && len(m.q.ExcludeGroups) == 0
}

func (m matcher) match(key string) bool {
	r := rel(m.prefix, key)
	if m.q.Text != "" && !containsFold(r, m.q.Text) {
		return false
	}
	if len(m.q.Groups) > 0 || len(m.q.ExcludeGroups) > 0 {
		g := groupOf(r)
		if len(m.q.Groups) > 0 && (g == "" || !contains(m.q.Groups, g)) {
			return false
		}
		if g != "" && contains(m.q.ExcludeGroups, g) {
			return false
		}
	}
	if len(m.q.Tags) > 0 {
		tags := tagsOf(r)
		for _, t := range m.q.Tags {
			if !contains(tags, t) {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Result is one page of a query, read from one snapshot.
type Result struct {
	Entries []catalog.Entry
	Total   int
	Seq     uint64
	// More says, for a cursor query, that entries follow this page.
	More bool
}

// less orders entries for q: by the sort field, ties by key, the whole
// order reversed for Desc — so every order is total and pages of it never
// overlap or skip.
func less(q *Query, order providers.Order, a, b *catalog.Entry) bool {
	return precedes(q, order, rankOf(a), rankOf(b))
}

// rank is what the orders read of an asset: an entry's, or a search hit's
// (which comes without its entry).
type rank struct {
	key         string
	size, mtime int64 // mtime in unix ns, math.MinInt64 when unknown
}

func rankOf(e *catalog.Entry) rank {
	r := rank{key: e.Key, size: e.Size, mtime: math.MinInt64}
	if !e.LastModified.IsZero() {
		r.mtime = e.LastModified.UnixNano()
	}
	return r
}

// precedes is less on ranks.
func precedes(q *Query, order providers.Order, a, b rank) bool {
	c := 0
	switch q.Sort {
	case ByLastModified:
		c = cmp.Compare(a.mtime, b.mtime)
	case BySize:
		c = cmp.Compare(a.size, b.size)
	case ByName:
		c = strings.Compare(path.Base(a.key), path.Base(b.key))
	}
	if c == 0 {
		c = order.Compare(a.key, b.key)
	}
	if q.Desc {
		return c > 0
	}
	return c < 0
}

// Run answers q from one snapshot of src. It streams the source once and
// holds at most page×perPage+perPage entries (a bounded heap), never the
// whole source; an ascending key order without filters reads only the
// entries up to the page and takes the total from the catalog's count.
func Run(ctx context.Context, src *catalog.Source, order providers.Order, prefix string, q Query) (Result, error) {
	var res Result
	m := matcher{q: &q, prefix: prefix, order: order}
	offset, k := q.Page*q.PerPage, q.Page*q.PerPage+q.PerPage
	err := src.View(ctx, func(sn *catalog.Snapshot) error {
		res.Seq = sn.Seq
		if q.Cursor {
			return runCursor(ctx, sn, m, &q, &res)
		}
		if ok, err := pushdown(ctx, sn, prefix, &q, &res); ok || err != nil {
			return err
		}
		if m.none() && sn.Indexed() {
			// Every entry matches: walk the order's index to the page;
			// the total is the catalog's count.
			res.Total = int(sn.Count)
			ix := map[Field]catalog.Index{ByKey: catalog.IndexKey, ByLastModified: catalog.IndexLastModified,
				ByName: catalog.IndexName, BySize: catalog.IndexSize}[q.Sort]
			return sn.Walk(ctx, ix, q.Desc, offset, func(e catalog.Entry) error {
				res.Entries = append(res.Entries, e)
				if len(res.Entries) == q.PerPage {
					return catalog.ErrStop
				}
				return nil
			})
		}
		if q.Text != "" && len(q.Groups) == 0 {
			return runSearch(ctx, sn, m, &q, &res)
		}
		if q.Sort == ByKey && !q.Desc {
			n := 0
			fast := m.none()
			if fast {
				res.Total = int(sn.Count)
			}
			keep := func(e catalog.Entry) error {
				if n >= offset && n < k {
					res.Entries = append(res.Entries, e)
				}
				n++
				if fast && n >= k {
					return catalog.ErrStop
				}
				return nil
			}
			var err error
			if fast {
				err = sn.Range(ctx, "", keep)
			} else {
				err = m.scan(ctx, sn, keep)
			}
			if !fast {
				res.Total = n
			}
			return err
		}
		return runTop(ctx, sn, m, &q, &res)
	})
	return res, err
}

// runTop answers a filtered query in any order but ascending keys: one
// scan of the matches into a bounded heap of the page and those before it.
func runTop(ctx context.Context, sn *catalog.Snapshot, m matcher, q *Query, res *Result) error {
	offset, k := q.Page*q.PerPage, q.Page*q.PerPage+q.PerPage
	h := &topK{q: q, order: m.order}
	n := 0
	err := m.scan(ctx, sn, func(e catalog.Entry) error {
		n++
		if len(h.items) < k {
			heap.Push(h, e)
		} else if less(q, m.order, &e, &h.items[0]) {
			h.items[0] = e
			heap.Fix(h, 0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Total = n
	// Pop yields the worst first: fill the sorted slice from the end.
	sorted := make([]catalog.Entry, len(h.items))
	for i := len(sorted) - 1; i >= 0; i-- {
		sorted[i] = heap.Pop(h).(catalog.Entry)
	}
	if offset < len(sorted) {
		res.Entries = sorted[offset:]
	}
	return nil
}

// runCursor answers a keyset query: the page after q.After in key order,
// one entry more to learn whether another page follows. The total is the
// count without filters, else one counting pass over the keys.
func runCursor(ctx context.Context, sn *catalog.Snapshot, m matcher, q *Query, res *Result) error {
	var match func([]byte) bool
	if !m.none() {
		match = func(key []byte) bool { return m.match(unsafeString(key)) }
	}
	err := sn.RangeAfter(ctx, q.After, match, func(e catalog.Entry) error {
		if len(res.Entries) == q.PerPage {
			res.More = true
			return catalog.ErrStop
		}
		res.Entries = append(res.Entries, e)
		return nil
	})
	if err != nil || match == nil {
		res.Total = int(sn.Count)
		return err
	}
	return m.scan(ctx, sn, func(catalog.Entry) error { res.Total++; return nil })
}

// scan calls fn for the entries m accepts, in key order: through a seek
// per group when the query names groups, else through the catalog's search
// (its search blocks read only the text's hits) when it has text, else one
// pass over the keys.
func (m matcher) scan(ctx context.Context, sn *catalog.Snapshot, fn func(catalog.Entry) error) error {
	if m.none() {
		return sn.RangeMatch(ctx, func([]byte) bool { return true }, fn)
	}
	match := func(key []byte) bool { return m.match(unsafeString(key)) }
	if len(m.q.Groups) > 0 {
		prefixes, ok, err := m.groupPrefixes(ctx, sn)
		if err != nil {
			return err
		}
		if ok {
			return rangePrefixes(ctx, sn, prefixes, m.match, fn)
		}
	}
	if m.q.Text != "" {
		return sn.Search(ctx, m.q.Text, match, fn)
	}
	return sn.RangeMatch(ctx, match, fn)
}

// unsafeString views b as a string for the duration of a match call,
// which neither keeps nor changes it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// topK is a heap whose root is the entry that comes last in the query's
// order: the one a better entry displaces.
type topK struct {
	q     *Query
	order providers.Order
	items []catalog.Entry
}

func (h *topK) Len() int           { return len(h.items) }
func (h *topK) Less(i, j int) bool { return less(h.q, h.order, &h.items[j], &h.items[i]) }
func (h *topK) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *topK) Push(x any)         { h.items = append(h.items, x.(catalog.Entry)) }
func (h *topK) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
