package assetsource

import (
	"context"

	"github.com/imgly/syncer/catalog"
)

// pushIndex is the catalog's order for each sort field.
var pushIndex = [...]catalog.Index{ByLastModified: catalog.IndexLastModified, ByName: catalog.IndexName,
	ByKey: catalog.IndexKey, BySize: catalog.IndexSize}

// pushdown lets a backend that can answer the whole page (a
// catalog.Pager: PostgreSQL) do so, so that only the page's rows come to
// syncer: not every match for the heap and the count, nor, on the
// unfiltered paths, the first chunk of a walk (1,024 rows for a page of
// 50). It reports false, having done nothing, when the backend cannot or
// q has what the page query does not express (tags, a cursor).
func pushdown(ctx context.Context, sn *catalog.Snapshot, prefix string, q *Query, res *Result) (bool, error) {
	if q.Cursor || len(q.Tags) > 0 {
		return false, nil
	}
	page, total, ok, err := sn.Page(ctx, catalog.PageQuery{
		Prefix: prefix, Text: q.Text, Groups: q.Groups, ExcludeGroups: q.ExcludeGroups,
		Sort: pushIndex[q.Sort], Desc: q.Desc, Offset: q.Page * q.PerPage, Limit: q.PerPage,
	})
	if !ok || err != nil {
		return false, err
	}
	res.Entries, res.Total = page, total
	return true, nil
}
