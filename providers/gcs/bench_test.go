package gcs

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/iterator"

	"github.com/imgly/syncer/providers"
)

// benchObjects stays small: fake-gcs-server's uploads and listings grow
// quadratically with the bucket (see ../shared/notes/emulators.md).
const benchObjects = 2000

// BenchmarkList compares a full listing through the adapter and
// providers.Walk with a bare SDK listing loop over the same emulator bucket,
// in the same run, so the ratio shows the adapter's overhead.
func BenchmarkList(b *testing.B) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1",
	})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	b.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	objs := make([]fakestorage.Object, benchObjects)
	for i := range objs {
		objs[i] = fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "bench", Name: fmt.Sprintf("assets/%05d.png", i), ContentType: "image/png"},
			Content:     []byte("x"),
		}
	}
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "bench"})
	for _, o := range objs {
		srv.CreateObject(o)
	}
	ctx := context.Background()

	b.Run("adapter", func(b *testing.B) {
		p, err := New(ctx, Config{ID: "bench", Bucket: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		for b.Loop() {
			n := 0
			if err := providers.Walk(ctx, p, "", func(pg providers.Page) error {
				n += len(pg.Objects)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if n != benchObjects {
				b.Fatalf("listed %d", n)
			}
		}
		b.ReportMetric(float64(benchObjects*b.N)/b.Elapsed().Seconds(), "objects/s")
	})
	b.Run("bare", func(b *testing.B) {
		c, err := storage.NewClient(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for b.Loop() {
			n := 0
			it := c.Bucket("bench").Objects(ctx, nil)
			for {
				_, err := it.Next()
				if err == iterator.Done {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != benchObjects {
				b.Fatalf("listed %d", n)
			}
		}
		b.ReportMetric(float64(benchObjects*b.N)/b.Elapsed().Seconds(), "objects/s")
	})
}
