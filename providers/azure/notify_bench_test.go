package azure

import (
	"context"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// BenchmarkQueueLatency measures enqueue-to-Apply latency through Azurite:
// "busy" enqueues right after the previous message was applied (the consumer
// polls at its minimum interval); "idle" after the consumer has backed off to
// its maximum with the default intervals; "idle-1s" the same with the
// intervals before issue 15.4 (100 ms → 1 s), as the baseline of the same run.
//
// A queue idle for a minute or more is simulated by waiting 3 × the maximum
// interval plus a random fraction of it before each enqueue: the back-off
// reaches its ceiling after five empty dequeues (100 → 200 → 400 → 800 ms,
// capped), from where it polls exactly as after any longer idle time; the
// random fraction lands the enqueue at a random phase of the polling.
//
//	go test -run=NONE -bench=QueueLatency -benchtime=100x ./providers/azure/
func BenchmarkQueueLatency(b *testing.B) {
	for _, bc := range []struct {
		name     string
		idle     bool
		opts     []QueueOption
		interval time.Duration
	}{
		{"busy", false, nil, DefaultPollMax},
		{"idle", true, nil, DefaultPollMax},
		{"idle-1s", true, []QueueOption{WithPollInterval(100*time.Millisecond, time.Second)}, time.Second},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tq := newTestQueue(b)
			rec := newRecorder()
			c, err := NewQueueConsumer(context.Background(), tq.source(30*time.Second, 5), rec, nil, nil, bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() { cancel(); <-done }()

			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				if bc.idle {
					b.StopTimer()
					time.Sleep(3*bc.interval + rand.N(bc.interval))
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
			at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(at(0.5), "p50-ms")
			b.ReportMetric(at(0.9), "p90-ms")
			b.ReportMetric(at(0.99), "p99-ms")
		})
	}
}
