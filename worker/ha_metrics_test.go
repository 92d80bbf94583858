package worker_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// With a shared catalog each lease acquisition makes a new scheduler; the
// scan metrics are the process's, so a source that moves away and comes
// back keeps counting in the same series.
func TestHAScanMetricsSurviveLeaseMoves(t *testing.T) {
	n := testkit.StartNATS(t, t.TempDir(), 0)
	dsn := testkit.StartPostgres(t).NewDatabase(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a", "b.txt": "bb"})
	cfg := testConfig(t, n.URL, config.Source{ID: "loc", Provider: "local", Path: dir})
	cfg.Catalog = config.Catalog{URL: dsn}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w := start(t, cfg, worker.Options{Replica: "r1", LeaseTTL: 2 * time.Second, LeaseRenew: 100 * time.Millisecond})
	addr := w.HTTPAddr()
	waitMetric(t, addr, 1, "syncer_scans_total", `source="loc"`, `result="ok"`)
	if got := metric(t, addr, "syncer_scan_objects", `source="loc"`); got != 2 {
		t.Errorf("syncer_scan_objects = %v, want 2", got)
	}

	// Another owner takes the lease for a moment: r1's renewal fails, it
	// stops the source, and takes it again once that lease expires.
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	tag, err := db.Exec(t.Context(), `UPDATE syncer_leases SET owner = 'ghost', token = token + 1,
		expires_at = now() + interval '500 milliseconds' WHERE source = 'loc' AND owner = 'r1'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("steal the lease: %v (%d rows)", err, tag.RowsAffected())
	}
	writeFiles(t, dir, map[string]string{"c.txt": "ccc"})
	// The new owner's scheduler scans at its start: the second ok scan of
	// the same series.
	waitMetric(t, addr, 2, "syncer_scans_total", `source="loc"`, `result="ok"`)
	var owner string
	if err := db.QueryRow(t.Context(), "SELECT owner FROM syncer_leases WHERE source = 'loc'").Scan(&owner); err != nil || owner != "r1" {
		t.Fatalf("owner after the move back = %q, %v; want r1", owner, err)
	}
	if got := metric(t, addr, "syncer_scan_objects", `source="loc"`); got != 3 {
		t.Errorf("syncer_scan_objects after the move back = %v, want 3", got)
	}
	if got := metric(t, addr, "syncer_scan_duration_seconds_count", `source="loc"`, `result="ok"`); got != 2 {
		t.Errorf("syncer_scan_duration_seconds_count{result=ok} = %v, want 2", got)
	}
}
