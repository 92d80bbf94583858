package pgcatalog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
)

// benchSource is a source filled with n objects in batches of 5,000, as a
// first scan commits them.
func benchSource(b *testing.B, n int) *catalog.Source {
	pg := testkit.StartPostgres(b)
	c := open(b, pg.NewDatabase(b))
	b.Cleanup(func() { c.Close() })
	s := c.Source("s", providers.ByteOrder)
	fillBatches(b, s, n, time.Now())
	return s
}

func fillBatches(b *testing.B, s *catalog.Source, n int, listedAt time.Time) {
	ctx := context.Background()
	for i := 0; i < n; i += 5000 {
		var muts []catalog.Mutation
		for j := i; j < min(i+5000, n); j++ {
			muts = append(muts, catalog.Mutation{Origin: catalog.Scan, Guard: true, ListedAt: listedAt,
				Object: providers.Object{Key: fmt.Sprintf("photos/2024/%08d.jpg", j), ETag: fmt.Sprintf("\"%032d\"", j), Size: int64(j), LastModified: listedAt}})
		}
		if _, err := s.Commit(ctx, muts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstScanCommits is the catalog's share of a first scan.
func BenchmarkFirstScanCommits(b *testing.B) {
	const n = 50_000
	pg := testkit.StartPostgres(b)
	b.StopTimer()
	for range b.N {
		c := open(b, pg.NewDatabase(b))
		s := c.Source("s", providers.ByteOrder)
		b.StartTimer()
		fillBatches(b, s, n, time.Now())
		b.StopTimer()
		c.Close()
	}
	b.StartTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/object")
}

// BenchmarkRescanRange is the catalog's share of a rescan: one Range per
// listing page of 1,000 keys, stopped after the page.
func BenchmarkRescanRange(b *testing.B) {
	const n = 50_000
	s := benchSource(b, n)
	ctx := context.Background()
	for b.Loop() {
		after := ""
		for p := 0; p < n/1000; p++ {
			last := fmt.Sprintf("photos/2024/%08d.jpg", p*1000+999)
			err := s.Range(ctx, after, func(e catalog.Entry) error {
				if e.Key > last {
					return catalog.ErrStop
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			after = last
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/object")
}
