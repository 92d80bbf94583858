package pgcatalog_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// Rows written before the folded column (NULL) are still found, and an
// indexed commit folds them; the trigram index exists where pg_trgm does
// and the planner uses it for a text query.
func TestSearchFoldsOldRows(t *testing.T) {
	pg := testkit.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	c := open(t, dsn)
	defer c.Close()
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	var muts []catalog.Mutation
	for i := range 20000 {
		name := fmt.Sprintf("d/img-%04d.png", i)
		if i%100 == 0 {
			name = fmt.Sprintf("d/Needle-%04d.png", i)
		}
		muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: providers.Object{Key: name, ETag: "e"}})
	}
	if _, err := s.Commit(t.Context(), muts); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "UPDATE syncer_objects SET folded = NULL WHERE sk < 'd/img-01'"); err != nil {
		t.Fatal(err)
	}
	count := func(label string, want int) {
		t.Helper()
		n := 0
		err := s.View(t.Context(), func(sn *catalog.Snapshot) error {
			return sn.Search(t.Context(), "needle", nil, func(catalog.Entry) error { n++; return nil })
		})
		if err != nil || n != want {
			t.Errorf("%s: search found %d (%v), want %d", label, n, err, want)
		}
	}
	count("with unfolded rows", 200)
	if _, err := s.Commit(t.Context(), []catalog.Mutation{{Origin: catalog.Scan, Object: providers.Object{Key: "e/needle", ETag: "e"}}}); err != nil {
		t.Fatal(err)
	}
	var unfolded int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM syncer_objects WHERE folded IS NULL").Scan(&unfolded); err != nil || unfolded != 0 {
		t.Fatalf("after an indexed commit: %d rows unfolded (%v)", unfolded, err)
	}
	count("folded", 201)
	var trgm bool
	if err := conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')").Scan(&trgm); err != nil {
		t.Fatal(err)
	}
	if !trgm {
		t.Skip("pg_trgm not available: text queries scan (checked above)")
	}
	var ix bool
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass('syncer_objects_folded') IS NOT NULL").Scan(&ix); err != nil || !ix {
		t.Fatalf("pg_trgm is there but the trigram index is not (%v)", err)
	}
	// VACUUM merges the index's pending list (fresh rows, which the
	// planner rightly prices as a scan), as autovacuum does in service.
	if _, err := conn.Exec(t.Context(), "VACUUM ANALYZE syncer_objects"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(t.Context(), `EXPLAIN SELECT sk FROM syncer_objects WHERE source = 's' AND folded LIKE '%needle%' AND ix`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "syncer_objects_folded") {
		t.Errorf("the text query does not use the trigram index:\n%s", strings.Join(plan, "\n"))
	}
}
