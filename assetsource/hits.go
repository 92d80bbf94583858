package assetsource

import (
	"container/heap"
	"context"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/providers"
)

// runSearch answers a text query from the catalog's search hits: each hit
// carries the fields the orders need, so the total and the page's ranking
// come from the hits alone, and only the page's entries are read — not
// every hit's (10,000 reads and decodes for a 1 % query over 1,000,000).
func runSearch(ctx context.Context, sn *catalog.Snapshot, m matcher, q *Query, res *Result) error {
	offset, k := q.Page*q.PerPage, q.Page*q.PerPage+q.PerPage
	keyOrder := q.Sort == ByKey && !q.Desc // hits come in key order
	h := &hitHeap{q: q, order: m.order}
	var page []catalog.Hit
	n := 0
	match := func(key []byte) bool { return m.match(unsafeString(key)) }
	err := sn.SearchHits(ctx, q.Text, match, func(hit *catalog.Hit) error {
		n++
		switch {
		case keyOrder:
			if n > offset && n <= k {
				page = append(page, hit.Clone())
			}
		case len(h.items) < k:
			heap.Push(h, hit.Clone())
		case h.before(hit, &h.items[0]):
			// The displaced root's key buffer takes the new key: no
			// allocation per hit that enters the heap.
			r := &h.items[0]
			key := append(r.Key[:0], hit.Key...)
			*r = *hit
			r.Key = key
			heap.Fix(h, 0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.Total = n
	if !keyOrder {
		// Pop yields the worst first: fill the sorted slice from the end.
		page = make([]catalog.Hit, len(h.items))
		for i := len(page) - 1; i >= 0; i-- {
			page[i] = heap.Pop(h).(catalog.Hit)
		}
		page = page[min(offset, len(page)):]
	}
	res.Entries = make([]catalog.Entry, 0, len(page))
	for i := range page {
		e, err := sn.HitEntry(&page[i])
		if err != nil {
			return err
		}
		res.Entries = append(res.Entries, e)
	}
	return nil
}

// hitHeap is topK for hits: its root is the hit that comes last in the
// query's order. Its hits own their keys.
type hitHeap struct {
	q     *Query
	order providers.Order
	items []catalog.Hit
}

func hitRank(h *catalog.Hit) rank {
	return rank{key: unsafeString(h.Key), size: h.Size, mtime: h.LastModified}
}

// before says whether a comes before b in the query's order.
func (h *hitHeap) before(a, b *catalog.Hit) bool {
	return precedes(h.q, h.order, hitRank(a), hitRank(b))
}

func (h *hitHeap) Len() int           { return len(h.items) }
func (h *hitHeap) Less(i, j int) bool { return h.before(&h.items[j], &h.items[i]) }
func (h *hitHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *hitHeap) Push(x any)         { h.items = append(h.items, x.(catalog.Hit)) }
func (h *hitHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}
