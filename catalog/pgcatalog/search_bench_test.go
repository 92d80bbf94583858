package pgcatalog_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// BenchmarkSearch is a text query matching 1 % of an indexed source
// (200,000 objects; SYNCER_BENCH_OBJECTS to change): through the trigram
// index (search) and as the pass it replaces (pass), p50 and p99.
//
//	go test -run '^$' -bench BenchmarkSearch -benchtime 50x ./catalog/pgcatalog/
func BenchmarkSearch(b *testing.B) {
	n := 200_000
	if v := os.Getenv("SYNCER_BENCH_OBJECTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	pg := testkit.StartPostgres(b)
	dsn := pg.NewDatabase(b)
	c := open(b, dsn)
	b.Cleanup(func() { c.Close() })
	s := c.Source("s", providers.ByteOrder).Indexed(true)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < n; i += 5000 {
		var muts []catalog.Mutation
		for j := i; j < min(i+5000, n); j++ {
			name := fmt.Sprintf("img-%07d.png", j)
			if j%100 == 0 {
				name = fmt.Sprintf("needle-%07d.png", j)
			}
			muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: providers.Object{Key: fmt.Sprintf("dir%03d/%s", j%500, name), ETag: "e"}})
		}
		if _, err := s.Commit(ctx, muts); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d objects committed in %v", n, time.Since(start))
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE syncer_objects"); err != nil { // as autovacuum would by now
		b.Fatal(err)
	}
	conn.Close(ctx)
	for _, c := range []struct {
		name string
		run  func(sn *catalog.Snapshot, fn func(catalog.Entry) error) error
	}{
		{"search", func(sn *catalog.Snapshot, fn func(catalog.Entry) error) error {
			return sn.Search(ctx, "needle", nil, fn)
		}},
		{"pass", func(sn *catalog.Snapshot, fn func(catalog.Entry) error) error {
			return sn.RangeMatch(ctx, func(k []byte) bool { return catalog.ContainsFold(string(k), "needle") }, fn)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d []time.Duration
			for b.Loop() {
				t := time.Now()
				hits := 0
				err := s.View(ctx, func(sn *catalog.Snapshot) error {
					return c.run(sn, func(catalog.Entry) error { hits++; return nil })
				})
				d = append(d, time.Since(t))
				if err != nil || hits != (n+99)/100 {
					b.Fatalf("%d hits (%v), want %d", hits, err, (n+99)/100)
				}
			}
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
