package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// BenchmarkWebhookLatency drives the notification path at a fixed rate —
// S3-format records POSTed to the webhook, each completed by a stat against
// gofakes3, committed, coalesced and published — and reports the time from
// sending a notification to a JetStream subscriber receiving its change.
//
//	go test -run=NONE -bench=WebhookLatency -benchtime=1x ./worker/
func BenchmarkWebhookLatency(b *testing.B) {
	for _, window := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%s", window), func(b *testing.B) {
			for range b.N {
				benchNotify(b, window, 2000, 5*time.Second, nil)
			}
		})
	}
}

// BenchmarkSQSLatency is the same through SQS (fauxqs): the notifications
// are sent in batches of ten, as S3 delivers them to a busy queue, and the
// consumer receives, applies and deletes them ten at a time.
//
//	SYNCER_TEST_SQS_ENDPOINT=http://127.0.0.1:4566 go test -run=NONE -bench=SQSLatency -benchtime=1x ./worker/
func BenchmarkSQSLatency(b *testing.B) {
	endpoint := needEnv(b, "SYNCER_TEST_SQS_ENDPOINT", "fauxqs")
	for _, window := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%s", window), func(b *testing.B) {
			for range b.N {
				q := newSQSQueue(b, endpoint)
				benchNotify(b, window, 2000, 5*time.Second, q)
			}
		})
	}
}

// benchNotify offers rate notifications/s for dur to the worker's webhook,
// or to q when it is not nil, and reports latency percentiles.
func benchNotify(b *testing.B, window time.Duration, rate int, dur time.Duration, q *sqsQueue) {
	n := rate * int(dur/time.Second)
	s3 := testkit.StartS3(b, nil)
	s3.CreateBucket(b, "bench")
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				s3.Put(b, "bench", fmt.Sprintf("k/%06d.jpg", i), []byte("x"), "image/jpeg")
			}
		}()
	}
	wg.Wait()
	nt := testkit.StartNATS(b, b.TempDir(), 0)
	src := s3.SourceConfig("bench", "bench")
	src.Prefix = "k/"
	src.Notifications.Webhook = &config.Webhook{Token: "secret"}
	if q != nil {
		src.Notifications.SQS = &config.SQS{QueueURL: q.url, Endpoint: *q.sqs.Options().BaseEndpoint,
			Region: "us-east-1", Concurrency: 8, WaitTime: time.Second}
	}
	cfg, _ := config.Parse([]byte("{}"), func(string) (string, bool) { return "", false })
	cfg.NATS.URL, cfg.Catalog.Path, cfg.HTTP.Listen = nt.URL, b.TempDir(), "127.0.0.1:0"
	cfg.Events.CoalesceWindow = window
	// Every S3 create is completed by a stat: let stats keep up with the
	// offered rate, so that the path, not the limiter, is measured.
	cfg.Notify.StatRate, cfg.Notify.StatBurst = float64(2*rate), rate
	cfg.Sources = []config.Source{src}

	// The start-up scan imports the bucket; then every object is
	// overwritten, and the notifications say so.
	w := startB(b, cfg)
	drainedB(b, w)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				s3.Put(b, "bench", fmt.Sprintf("k/%06d.jpg", i), []byte(benchBody), "image/jpeg")
			}
		}()
	}
	wg.Wait()
	received := make(map[string]time.Time, n)
	var mu sync.Mutex
	done := make(chan struct{})
	nc, _ := nats.Connect(nt.URL)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cons jetstream.Consumer
	for {
		var err error
		if cons, err = js.OrderedConsumer(ctx, cfg.NATS.Stream, jetstream.OrderedConsumerConfig{}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cc, _ := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		ev, err := events.Decode(m.Data())
		if err != nil {
			return
		}
		mu.Lock()
		for _, c := range ev.Data.Changes {
			if c.Op == "modified" {
				received[c.Key] = now
			}
		}
		if len(received) == n {
			close(done)
		}
		mu.Unlock()
	})
	defer cc.Stop()

	hook := "http://" + w.HTTPAddr() + "/webhooks/s3/bench"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sent := make([]time.Time, n)
	acked := make([]time.Time, n)
	// Jobs are runs of keys: one per webhook request, ten per SQS batch.
	per := 1
	if q != nil {
		per = 10
	}
	jobs := make(chan int, 256)
	var senders sync.WaitGroup
	for range 32 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for first := range jobs {
				if q != nil {
					var entries []sqstypes.SendMessageBatchRequestEntry
					for i := first; i < min(first+per, n); i++ {
						entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
							Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(string(recordBody("bench", fmt.Sprintf("k/%06d.jpg", i), i))),
						})
						sent[i] = time.Now()
					}
					if _, err := q.sqs.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries}); err != nil {
						b.Error(err)
					}
					continue
				}
				i := first
				body := recordBody("bench", fmt.Sprintf("k/%06d.jpg", i), i)
				req, _ := http.NewRequest(http.MethodPost, hook, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer secret")
				sent[i] = time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					continue
				}
				acked[i] = time.Now()
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("webhook: %s", resp.Status)
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; i < n; i += per {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the load, not synchronisation
		}
		jobs <- i
	}
	close(jobs)
	senders.Wait()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("only %d of %d changes arrived", len(received), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	lat := make([]time.Duration, 0, n)
	mu.Lock()
	for i := range n {
		lat = append(lat, received[fmt.Sprintf("k/%06d.jpg", i)].Sub(sent[i]))
	}
	mu.Unlock()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if q == nil {
		// The webhook answers once the change is committed: the share of
		// the latency before the publisher.
		resp := make([]time.Duration, 0, n)
		for i := range n {
			resp = append(resp, acked[i].Sub(sent[i]))
		}
		slices.Sort(resp)
		b.ReportMetric(ms(resp[n*99/100]), "commit-p99-ms")
	}
	b.ReportMetric(ms(lat[n/2]), "p50-ms")
	b.ReportMetric(ms(lat[n*99/100]), "p99-ms")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "notifications/s")
	w.stopB(b)
}

func drainedB(b *testing.B, w *running) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st, err := w.Sources()[0].Catalog.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if st.Pending == 0 && st.Objects > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("start-up scan not published within a minute")
}

// benchBody is what every object holds when its notification is sent.
const benchBody = "version 2"

func recordBody(bucket, key string, seq int) []byte {
	rec := map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"s3": map[string]any{
			"bucket": map[string]any{"name": bucket},
			"object": map[string]any{"key": url.QueryEscape(key), "size": len(benchBody), "eTag": md5Hex(benchBody), "sequencer": fmt.Sprintf("%016X", seq+1)},
		},
	}
	body, _ := json.Marshal(map[string]any{"Records": []any{rec}})
	return body
}
