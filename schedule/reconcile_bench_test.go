package schedule_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/s3"
	"github.com/imgly/syncer/schedule"
)

// benchObjects is the bucket size of BenchmarkReconcile: big enough that a
// scan is dominated by per-object costs, small enough to fill in seconds.
const benchObjects = 20000

// BenchmarkReconcile compares a scan with the listing it is built on, all
// against gofakes3 in-process:
//
//   - list-sdk: a bare aws-sdk-go-v2 ListObjectsV2 paginator loop (what
//     bench/listloop does);
//   - list-walk: providers.Walk over the S3 adapter, the baseline a scan
//     cannot beat;
//   - first: Reconcile into a fresh catalog (every object added);
//   - rescan: Reconcile again with nothing changed, which must not write.
//
// x-walk is a sub-benchmark's time per scan over list-walk's of the same run
// (reported only when list-walk ran first). Allocations are those of the
// whole process, gofakes3's included; compare them between sub-benchmarks.
// bench/scan.sh measures the same at 1M objects, process against process.
func BenchmarkReconcile(b *testing.B) {
	ctx := context.Background()
	srv := testkit.StartS3(b, nil)
	const bucket = "bench"
	srv.CreateBucket(b, bucket)
	fillBucket(b, srv.Client, bucket, benchObjects)

	p, err := s3.New(ctx, s3.Config(srv.ProviderConfig(bucket)))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()

	// The bare loop's client is built as providers/s3 builds its own (and as
	// bench/listloop does), so list-sdk and list-walk differ only by the
	// adapter and Walk.
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion("us-east-1"),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	)
	if err != nil {
		b.Fatal(err)
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})

	var walkPerOp float64 // ns per listing in list-walk; 0 until it ran
	// report adds objects/s and, for the scans, x-walk.
	report := func(b *testing.B, scan bool) {
		perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(benchObjects*1e9/perOp, "objects/s")
		if scan && walkPerOp > 0 {
			b.ReportMetric(perOp/walkPerOp, "x-walk")
		}
	}

	b.Run("list-sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			in := &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(s3.DefaultPageSize)}
			for pg := awss3.NewListObjectsV2Paginator(client, in); pg.HasMorePages(); {
				out, err := pg.NextPage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				n += len(out.Contents)
			}
			if n != benchObjects {
				b.Fatalf("listed %d objects, want %d", n, benchObjects)
			}
		}
		report(b, false)
	})

	b.Run("list-walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			if err := providers.Walk(ctx, p, "", func(pg providers.Page) error {
				n += len(pg.Objects)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if n != benchObjects {
				b.Fatalf("listed %d objects, want %d", n, benchObjects)
			}
		}
		report(b, false)
		walkPerOp = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})

	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		dir := b.TempDir()
		var commit time.Duration
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			cat, err := catalog.Open(filepath.Join(dir, strconv.Itoa(i)))
			if err != nil {
				b.Fatal(err)
			}
			counting := &countingCatalog{Catalog: cat.Source("bench", p.Order())}
			b.StartTimer()
			res, err := schedule.Reconcile(ctx, target(p, counting), schedule.Options{SpillDir: dir})
			b.StopTimer()
			commit += time.Duration(counting.commit.Load())
			if err != nil {
				b.Fatal(err)
			}
			if res.Added != benchObjects {
				b.Fatalf("first scan added %d objects, want %d", res.Added, benchObjects)
			}
			if err := cat.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		report(b, true)
		b.ReportMetric(float64(commit.Milliseconds())/float64(b.N), "commit-ms/op")
	})

	b.Run("rescan", func(b *testing.B) {
		b.ReportAllocs()
		dir := b.TempDir()
		cat, err := catalog.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer cat.Close()
		src := cat.Source("bench", p.Order())
		if _, err := schedule.Reconcile(ctx, target(p, src), schedule.Options{SpillDir: dir}); err != nil {
			b.Fatal(err)
		}
		before, err := src.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		counting := &countingCatalog{Catalog: src}
		for b.Loop() {
			res, err := schedule.Reconcile(ctx, target(p, counting), schedule.Options{SpillDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if res.Added+res.Modified+res.Deleted != 0 || res.Listed != benchObjects {
				b.Fatalf("rescan of an unchanged bucket: %+v", res.Progress)
			}
		}
		report(b, true)
		b.ReportMetric(float64(time.Duration(counting.commit.Load()).Milliseconds())/float64(b.N), "commit-ms/op")
		after, err := src.Stats(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n := counting.writes.Load(); n != 0 || after != before {
			b.Fatalf("rescan wrote to the catalog: %d commits with mutations, stats %+v -> %+v", n, before, after)
		}
	})
}

func target(p providers.Provider, c schedule.Catalog) schedule.Target {
	return schedule.Target{ID: "bench", Provider: p, Catalog: c}
}

// countingCatalog counts the commits that carry mutations (a rescan of an
// unchanged bucket must make none) and the wall time spent committing, which
// includes bbolt's fsyncs and during which the listing waits once its one
// page of read-ahead is full.
type countingCatalog struct {
	schedule.Catalog
	writes atomic.Int64
	commit atomic.Int64 // ns
}

func (c *countingCatalog) Commit(ctx context.Context, muts []catalog.Mutation) ([]catalog.Change, error) {
	if len(muts) > 0 {
		c.writes.Add(1)
	}
	start := time.Now()
	defer func() { c.commit.Add(int64(time.Since(start))) }()
	return c.Catalog.Commit(ctx, muts)
}

// fillBucket puts n tiny objects with keys shaped like bench/s3server's,
// through the S3 API with 16 writers.
func fillBucket(b *testing.B, client *awss3.Client, bucket string, n int) {
	b.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				id := fmt.Sprintf("%010d", i)
				key := "library/images/2026/11/" + strconv.Itoa(1+i%28) + "/" + id + "/photo-" + id + "-1080p.jpg"
				_, err := client.PutObject(context.Background(), &awss3.PutObjectInput{
					Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("jpeg " + id),
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("put %s: %w", key, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
}
