package s3

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
)

// Parse throughput per format: the CPU cost of the first step of the
// notification path (parse -> apply -> outbox -> JetStream ack).
func BenchmarkParse(b *testing.B) {
	bodies := map[string]string{
		"records":     recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/2026/red+flower.jpg", Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "0055AED6DCD90281E5"})),
		"sns":         snsWrap(recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/2026/red+flower.jpg", Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "0055AED6DCD90281E5"}))),
		"eventbridge": eventBridgeBody("Object Created", "media", ebObj{Key: "photos/2026/red+flower.jpg", Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "617f08299329d189"}, "PutObject", ""),
		"minio":       minioBody("s3:ObjectCreated:Put", "media", "photos/2026/red flower.jpg", obj{Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: "17A9E1B2C3D4E5F6", ContentType: "image/jpeg"}),
	}
	for _, name := range []string{"records", "sns", "eventbridge", "minio"} {
		body := []byte(bodies[name])
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				res, err := Parse(body)
				if err != nil || len(res.Events) != 1 {
					b.Fatal(err, res)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

type countingApplier struct{ n atomic.Int64 }

func (c *countingApplier) Apply(_ context.Context, events []notify.Event) error {
	c.n.Add(int64(len(events)))
	return nil
}

// BenchmarkSQSConsumer measures messages/s through receive -> parse ->
// Apply (a no-op) -> DeleteMessageBatch against fauxqs: the queue side of
// the notification path, without the catalog. Each iteration is one
// message; the queue is filled before the timer starts.
func BenchmarkSQSConsumer(b *testing.B) {
	sqsEndpoint(b)
	for _, conc := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			e := newEnv(b, 30*time.Second)
			n := b.N
			fill(b, e, n)
			app := &countingApplier{}
			src := config.Source{ID: "bench", Provider: "s3", Bucket: "media", Notifications: config.Notifications{SQS: &config.SQS{
				QueueURL: e.queueURL, Endpoint: e.endpoint, Concurrency: conc, VisibilityTimeout: 30 * time.Second, WaitTime: time.Second,
			}}}
			c, err := NewSQSConsumer(b.Context(), notificationsOf(b, src), app, nil, nil, WithAWSOptions(awsTestOptions()...))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error, 1)
			b.ResetTimer()
			go func() { done <- c.Run(ctx) }()
			tick := time.NewTicker(time.Millisecond)
			for app.n.Load() < int64(n) {
				<-tick.C
			}
			b.StopTimer()
			tick.Stop()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func fill(b *testing.B, e *env, n int) {
	b.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			body := recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: fmt.Sprintf("bench/%08d.jpg", j), Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", Sequencer: fmt.Sprintf("%X", j+1)}))
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String(body)})
		}
		if _, err := e.sqs.SendMessageBatch(b.Context(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(e.queueURL), Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
}
