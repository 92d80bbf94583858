package worker_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/imgly/syncer/internal/testkit"
)

// BenchmarkWebhookLatencyCatalogs is BenchmarkWebhookLatency (2,000
// notifications/s, S3 webhook → commit → JetStream ack) on the bbolt and
// the PostgreSQL catalog in one run, so the two compare under the same
// load. With window=0 every commit is published at once: p50-ms and p99-ms
// are the commit path's latency to the ack, commit-p99-ms the commit alone.
//
// testkit's throwaway PostgreSQL runs with fsync off; for figures with a
// durable commit, point SYNCER_TEST_POSTGRES_URL at a server with its
// defaults (docs/benchmarks.md says which was used):
//
//	go test -run=NONE -bench=WebhookLatencyCatalogs -benchtime=1x ./worker/
//
// SYNCER_BENCH_NOTIFY_RATE offers another rate than 2,000/s: one that both
// catalogs sustain, so that the latencies compare without the queueing of
// a saturated path.
func BenchmarkWebhookLatencyCatalogs(b *testing.B) {
	rate := 2000
	if v := os.Getenv("SYNCER_BENCH_NOTIFY_RATE"); v != "" {
		r, err := strconv.Atoi(v)
		if err != nil || r <= 0 {
			b.Fatalf("SYNCER_BENCH_NOTIFY_RATE=%q: not a positive integer", v)
		}
		rate = r
	}
	pg := testkit.StartPostgres(b)
	for _, window := range []time.Duration{0, 250 * time.Millisecond} {
		for _, cat := range []string{"bbolt", "postgres"} {
			b.Run(fmt.Sprintf("window=%s/catalog=%s", window, cat), func(b *testing.B) {
				for range b.N {
					url := ""
					if cat == "postgres" {
						url = pg.NewDatabase(b)
					}
					benchNotifyOn(b, window, rate, 10000, nil, url)
				}
			})
		}
	}
}
