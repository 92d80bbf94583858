package pgcatalog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// The page query's plans on an analyzed table: newest first walks the
// mtime index backwards and sorts nothing (a sort would read every row of
// the source); a deep page skips its offset in that index alone; a group
// is key ranges of the primary key; text goes through the trigram index.
func TestPagePlans(t *testing.T) {
	pg := testkit.StartPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	b, err := open(ctx, pg.NewDatabase(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(b)
	defer cat.Close()
	src := cat.Source("s", providers.ByteOrder).Indexed(true)
	const n = 30_000
	for i := 0; i < n; i += 10_000 {
		var muts []catalog.Mutation
		for j := i; j < i+10_000; j++ {
			h := int64(j) * 7919 % n
			muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: providers.Object{Key: fmt.Sprintf("dir%02d/img-%06d.png", j%50, j),
				ETag: "e", Size: h, LastModified: time.Unix(1_700_000_000+h, 0)}})
		}
		if _, err := src.Commit(ctx, muts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.pool.Exec(ctx, "VACUUM ANALYZE syncer_objects"); err != nil {
		t.Fatal(err)
	}
	sn := &snapshot{s: &source{b: b, id: "s", order: providers.ByteOrder, indexed: true, group: &commitGroup{}}, indexed: true}
	for _, c := range []struct {
		name      string
		q         catalog.PageQuery
		want, not []string
	}{
		{"newest first", catalog.PageQuery{Sort: catalog.IndexLastModified, Desc: true, Limit: 50},
			[]string{"Index Scan Backward using syncer_objects_mtime"}, []string{"Sort"}},
		{"deep page", catalog.PageQuery{Sort: catalog.IndexLastModified, Desc: true, Offset: 5000, Limit: 50},
			[]string{"Index Only Scan Backward using syncer_objects_mtime"}, []string{"Seq Scan"}},
		{"by name", catalog.PageQuery{Sort: catalog.IndexName, Limit: 50},
			[]string{"using syncer_objects_name"}, []string{"Sort"}},
		{"group", catalog.PageQuery{Sort: catalog.IndexLastModified, Desc: true, Groups: []string{"dir07"}, Limit: 50},
			nil, []string{"Seq Scan"}},
		{"text", catalog.PageQuery{Sort: catalog.IndexLastModified, Desc: true, Text: "img-0001", Limit: 50},
			nil, []string{"Seq Scan"}},
	} {
		w := sn.pageWhere(c.q)
		sql := pageQuery(w.where.String(), walkOrderDesc[c.q.Sort], len(w.args), c.q)
		if !c.q.Desc {
			sql = pageQuery(w.where.String(), walkOrder[c.q.Sort], len(w.args), c.q)
		}
		rows, err := b.pool.Query(ctx, "EXPLAIN "+sql, append(w.args, c.q.Offset, c.q.Limit)...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		plan := strings.Join(lines, "\n")
		for _, s := range c.want {
			if !strings.Contains(plan, s) {
				t.Errorf("%s: plan lacks %q:\n%s", c.name, s, plan)
			}
		}
		for _, s := range c.not {
			if strings.Contains(plan, s+" ") || strings.HasSuffix(plan, s) {
				t.Errorf("%s: plan has %q:\n%s", c.name, s, plan)
			}
		}
		t.Logf("%s:\n%s", c.name, plan)
	}
}
