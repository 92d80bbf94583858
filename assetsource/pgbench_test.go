package assetsource_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// BenchmarkQueriesPostgres is BenchmarkQueries on the PostgreSQL catalog
// (testkit's server, or SYNCER_TEST_POSTGRES_URL): the same 1,000,000
// objects (SYNCER_BENCH_OBJECTS to change) committed in batches of 10,000,
// then VACUUM ANALYZE (what autovacuum does by then), then each request
// through the HTTP handler twice, on one catalog: "existing" without the
// page query (assetsource filters, sorts and counts in Go) and "pushdown"
// with it. It logs the plans of the pushdown's SQL.
//
//	go test -run '^$' -bench BenchmarkQueriesPostgres -benchtime 100x -timeout 60m ./assetsource/
func BenchmarkQueriesPostgres(b *testing.B) {
	n := benchObjects()
	dsn := testkit.StartPostgres(b).NewDatabase(b)
	push, plain, pages := openPostgres(b, dsn)
	ctx := context.Background()
	start := time.Now()
	fillBench(b, push.Source("big", providers.ByteOrder).Indexed(true), n)
	b.Logf("%d objects committed in %v", n, time.Since(start))
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE syncer_objects"); err != nil {
		b.Fatal(err)
	}
	logPlans(b, conn)
	mux := http.NewServeMux()
	for name, cat := range map[string]*catalog.Catalog{"pushdown": push, "existing": plain} {
		cfg := config.Source{ID: name, Provider: "s3", Assets: config.Assets{URI: config.AssetURIPublic, PublicBaseURL: "https://cdn.example"}}
		src := cat.Source("big", providers.ByteOrder).Indexed(true)
		srv, err := assetsource.New(assetsource.Options{Sources: []assetsource.Source{{Config: cfg, Provider: benchProvider{}, Catalog: src}}, Open: true})
		if err != nil {
			b.Fatal(err)
		}
		sub := http.NewServeMux()
		srv.Register(sub)
		mux.Handle("/sources/"+name+"/", sub)
	}
	for _, c := range benchShapes {
		for _, path := range []string{"existing", "pushdown"} {
			b.Run(c.name+"/"+path, func(b *testing.B) {
				before := pages.Load()
				var d []time.Duration
				for b.Loop() {
					t := time.Now()
					rec := httptest.NewRecorder()
					mux.ServeHTTP(rec, httptest.NewRequest("GET", "/sources/"+path+"/assets?"+c.q, nil))
					d = append(d, time.Since(t))
					if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"total":`) {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
				slices.Sort(d)
				b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(pages.Load()-before)/float64(len(d)), "pushed/op")
			})
		}
	}
}

// benchShapes are BenchmarkQueries' requests.
var benchShapes = []struct{ name, q string }{
	{"newest-first", "perPage=50&page=0"},
	{"newest-first-page-100", "perPage=50&page=100"},
	{"by-name", "perPage=50&page=0&sortKey=name&sortingOrder=Ascending"},
	{"by-size-desc", "perPage=50&page=0&sortKey=size&sortingOrder=Descending"},
	{"query-1pct", "perPage=50&page=0&query=NEEDLE"},
	{"group", "perPage=50&page=0&groups=dir007"},
}

// benchObjects is the benchmarks' source size: 1,000,000, or
// SYNCER_BENCH_OBJECTS.
func benchObjects() int {
	if n, err := strconv.Atoi(os.Getenv("SYNCER_BENCH_OBJECTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// fillBench commits BenchmarkQueries' objects: dirNNN/img-NNNNNNN.png,
// one in 100 named needle-…, scrambled times and sizes.
func fillBench(b *testing.B, src *catalog.Source, n int) {
	t0 := time.Unix(1_700_000_000, 0)
	const batch = 10_000
	for i := 0; i < n; i += batch {
		muts := make([]catalog.Mutation, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			name := fmt.Sprintf("img-%07d.png", j)
			if j%100 == 0 {
				name = fmt.Sprintf("needle-%07d.png", j)
			}
			h := uint64(j) * 2654435761 % 1_000_003
			muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Object: providers.Object{
				Key: fmt.Sprintf("dir%03d/%s", j%500, name), Size: int64(h % 5_000_000), ETag: strconv.Itoa(j),
				LastModified: t0.Add(time.Duration(h) * time.Second), ContentType: "image/png",
			}})
		}
		if _, err := src.Commit(context.Background(), muts); err != nil {
			b.Fatal(err)
		}
	}
}

// logPlans logs EXPLAIN ANALYZE of the SQL the pushdown sends for the
// filtered shapes (the unfiltered ones walk the order index either way).
func logPlans(b *testing.B, conn *pgx.Conn) {
	ctx := context.Background()
	const page = "SELECT sk, seq, size, mtime, etag, version, ctype FROM syncer_objects WHERE "
	text := "source = 'big' AND ix AND folded LIKE '%needle%' AND strpos(substr(folded, CASE WHEN substr(folded, 1, 1) = '/' THEN 2 ELSE 1 END), 'needle') > 0"
	group := `source = 'big' AND ix AND (sk >= '\x2f6469723030372f'::bytea AND sk < '\x2f6469723030372f'::bytea || '\xff'::bytea OR sk >= 'dir007/'::bytea AND sk < 'dir0070'::bytea)`
	for _, sql := range []string{
		page + "source = 'big' AND ix ORDER BY mtime DESC, sk DESC OFFSET 0 LIMIT 50",
		page + "source = 'big' AND sk IN (SELECT sk FROM syncer_objects WHERE source = 'big' AND ix ORDER BY mtime DESC, sk DESC OFFSET 5000 LIMIT 50) ORDER BY mtime DESC, sk DESC",
		"SELECT sk, seq, size, mtime, etag, version, ctype, count(*) OVER () FROM syncer_objects WHERE " + text +
			" ORDER BY mtime DESC, sk DESC OFFSET 0 LIMIT 50",
		page + group + " ORDER BY mtime DESC, sk DESC OFFSET 0 LIMIT 50",
		"SELECT count(*) FROM syncer_objects WHERE " + group,
	} {
		rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%s\n%s", sql, strings.Join(lines, "\n"))
	}
}
