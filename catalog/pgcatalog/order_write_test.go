package pgcatalog_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// Opening a source whose order is recorded writes no row: a no-change
// rescan opens it and must write nothing (bench/scan.sh counts the rows).
func TestCheckOrderWritesOnce(t *testing.T) {
	dsn := testkit.StartPostgres(t).NewDatabase(t)
	c := open(t, dsn)
	defer c.Close()
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	version := func() string { // the row's xmin changes with every write of it
		var x string
		if err := db.QueryRow(t.Context(), "SELECT xmin::text FROM syncer_sources WHERE id = 's'").Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	if err := c.Source("s", providers.ByteOrder).CheckOrder(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := version()
	for range 2 {
		if err := c.Source("s", providers.ByteOrder).CheckOrder(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if v := version(); v != first {
		t.Errorf("the source's row was rewritten by a later open (xmin %s -> %s)", first, v)
	}
	if err := c.Source("s", providers.UTF16Order).CheckOrder(t.Context()); err == nil {
		t.Error("a different order was accepted")
	}
}
