package assetsource_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/imgly/syncer/assetsource"
	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/providers"
)

// BenchmarkQueries measures pages of 50 over a large source (1,000,000
// objects; SYNCER_BENCH_OBJECTS to change) through the HTTP handler, and
// reports each shape's p99. One object in 100 is named "needle-…"
// (fillBench).
//
//	go test -run '^$' -bench 'BenchmarkQueries$' -benchtime 200x ./assetsource/
func BenchmarkQueries(b *testing.B) {
	n := benchObjects()
	dir := b.TempDir()
	cat, err := catalog.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	src := cat.Source("big", providers.ByteOrder).Indexed(true)
	start := time.Now()
	fillBench(b, src, n)
	build := time.Since(start)
	if fi, err := os.Stat(dir + "/catalog.db"); err == nil {
		b.Logf("%d objects committed in %v; catalog %d bytes (%.0f bytes/object)", n, build, fi.Size(), float64(fi.Size())/float64(n))
	}
	cfg := config.Source{ID: "big", Provider: "s3", Assets: config.Assets{URI: config.AssetURIPublic, PublicBaseURL: "https://cdn.example"}}
	srv, err := assetsource.New(assetsource.Options{Sources: []assetsource.Source{{Config: cfg, Provider: benchProvider{}, Catalog: src}}, Open: true})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	for _, c := range []struct{ name, q string }{
		{"newest-first", "perPage=50&page=0"},
		{"newest-first-page-100", "perPage=50&page=100"},
		{"by-name", "perPage=50&page=0&sortKey=name&sortingOrder=Ascending"},
		{"by-size-desc", "perPage=50&page=0&sortKey=size&sortingOrder=Descending"},
		{"query-1pct", "perPage=50&page=0&query=NEEDLE"},
		{"group", "perPage=50&page=0&groups=dir007"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var d []time.Duration
			for b.Loop() {
				t := time.Now()
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest("GET", "/sources/big/assets?"+c.q, nil))
				d = append(d, time.Since(t))
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// benchProvider stands in for a store the benchmark never calls
// (publicBaseURL needs no provider).
type benchProvider struct{}

func (benchProvider) ListPage(context.Context, string, string) (providers.Page, error) {
	return providers.Page{}, nil
}
func (benchProvider) Stat(context.Context, string) (providers.Object, error) {
	return providers.Object{}, providers.ErrNotFound
}
func (benchProvider) Order() providers.Order { return providers.ByteOrder }
func (benchProvider) Close() error           { return nil }
