package azure

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// BenchmarkQueueLatency measures enqueue-to-Apply latency through Azurite
// with the default poll intervals: "busy" enqueues right after the previous
// message was applied (the consumer polls at its minimum interval), "idle"
// after the consumer has backed off to its maximum.
//
//	go test -run=NONE -bench=QueueLatency -benchtime=20x ./notify/azure/
func BenchmarkQueueLatency(b *testing.B) {
	for _, idle := range []bool{false, true} {
		name := "busy"
		if idle {
			name = "idle"
		}
		b.Run(name, func(b *testing.B) {
			tq := newTestQueue(b)
			rec := newRecorder()
			c, err := NewQueueConsumer(context.Background(), tq.source(30*time.Second, 5), rec, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() { cancel(); <-done }()

			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				if idle {
					b.StopTimer()
					// Let the consumer back off fully, and land at a random
					// phase of its polling.
					time.Sleep(3*c.pollMax + rand.N(c.pollMax))
					b.StartTimer()
				}
				t0 := time.Now()
				if _, err := tq.q.EnqueueMessage(context.Background(), egDeleted, nil); err != nil {
					b.Fatal(err)
				}
				for {
					if calls, _ := rec.snapshot(); calls > i {
						break
					}
					<-rec.changed
				}
				lat = append(lat, time.Since(t0))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
		})
	}
}
