package worker_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// The embedded default's watch settings (cmd/syncer's defaultConfig).
const (
	embeddedSettle = 100 * time.Millisecond
	embeddedWindow = 25 * time.Millisecond
)

// BenchmarkLocalDropToEvent measures, with the embedded default's settle
// time and coalescing window, the time from a file dropped into a watched
// directory (written and closed) to its "added" event reaching a JetStream
// consumer, over 100 drops one after another:
//
//	go test ./worker -run '^$' -bench LocalDropToEvent -benchtime 1x
func BenchmarkLocalDropToEvent(b *testing.B) {
	root := b.TempDir()
	n := testkit.StartNATS(b, b.TempDir(), 0)
	settle := embeddedSettle
	cfg := testConfig(b, n.URL, config.Source{ID: "assets", Provider: "local", Path: root, Settle: &settle, Watch: new(true)})
	cfg.Events.CoalesceWindow = embeddedWindow
	startWatching(b, cfg, worker.Options{})
	cons := orderedConsumer(b, n.URL, cfg.NATS.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"syncer.changed.assets"}})
	arrived := make(chan string, 128)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.Decode(m.Data())
		if err != nil {
			b.Errorf("decode: %v", err)
			return
		}
		for _, c := range ev.Data.Changes {
			if c.Op == "added" {
				arrived <- c.Key
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	body := bytes.Repeat([]byte("x"), 64<<10) // an image-sized drop
	var lat []time.Duration
	b.ResetTimer()
	for run := range b.N {
		for i := range 100 {
			key := fmt.Sprintf("drop-%d-%03d.jpg", run, i)
			start := time.Now()
			if err := os.WriteFile(filepath.Join(root, key), body, 0o644); err != nil {
				b.Fatal(err)
			}
			select {
			case got := <-arrived:
				if got != key {
					b.Fatalf("event for %s, want %s", got, key)
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("no event for %s within 10s", key)
			}
			lat = append(lat, time.Since(start))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}
