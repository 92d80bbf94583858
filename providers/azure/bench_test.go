package azure_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/imgly/syncer/providers"
	"github.com/imgly/syncer/providers/azure"
)

// BenchmarkList compares a bare SDK listing loop with the provider's
// listing through providers.Walk, over the same Azurite container of
// SYNCER_BENCH_AZURE_BLOBS blobs (default 5000):
//
//	go test -run=NONE -bench=List -benchtime=5x ./providers/azure/
func BenchmarkList(b *testing.B) {
	endpoint := os.Getenv("SYNCER_TEST_AZURITE_BLOB")
	if endpoint == "" {
		b.Skip("SYNCER_TEST_AZURITE_BLOB not set")
	}
	n := 5000
	if s := os.Getenv("SYNCER_BENCH_AZURE_BLOBS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	admin, err := azblob.NewClientFromConnectionString(connString(endpoint), nil)
	if err != nil {
		b.Fatal(err)
	}
	name := uniqueName("syncer-bench-")
	if _, err := admin.CreateContainer(ctx, name, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = admin.DeleteContainer(context.Background(), name, nil) })
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for k := range keys {
				if _, err := admin.UploadBuffer(ctx, name, k, []byte(k), nil); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range n {
		keys <- fmt.Sprintf("assets/%03d/%06d.png", i%997, i)
	}
	close(keys)
	wg.Wait()

	b.Run("bare-sdk", func(b *testing.B) {
		cc, err := container.NewClientFromConnectionString(connString(endpoint), name, nil)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			seen := 0
			pager := cc.NewListBlobsFlatPager(nil)
			for pager.More() {
				pg, err := pager.NextPage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				seen += len(pg.Segment.BlobItems)
			}
			if seen != n {
				b.Fatalf("listed %d of %d", seen, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})
	b.Run("provider-walk", func(b *testing.B) {
		p, err := azure.New(ctx, azure.Config{ID: "bench", Container: name, ConnectionString: connString(endpoint)})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			seen := 0
			err := providers.Walk(ctx, p, "", func(pg providers.Page) error {
				seen += len(pg.Objects)
				return nil
			})
			if err != nil || seen != n {
				b.Fatalf("listed %d of %d: %v", seen, n, err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	})
}
