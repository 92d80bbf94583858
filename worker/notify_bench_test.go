package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
	"github.com/imgly/syncer/worker"
)

// BenchmarkWebhookLatency drives the notification path at a fixed rate —
// S3-format records POSTed to the webhook, parsed, committed, coalesced and
// published — and reports, per notification:
//
//   - p50-ms, p99-ms: from receipt (the webhook handler entered) to
//     JetStream's ack of the event holding its change: the measure;
//
//   - commit-p99-ms: from receipt to the change committed (the handler
//     answers then);
//
//   - sent-p99-ms: from the load generator sending it to a JetStream
//     subscriber receiving the change: all of the above plus the client's
//     HTTP round trip and one delivery, on the same two cores.
//
//     go test -run=NONE -bench=WebhookLatency -benchtime=1x ./worker/
func BenchmarkWebhookLatency(b *testing.B) {
	for _, window := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%s", window), func(b *testing.B) {
			for range b.N {
				benchNotify(b, window, 2000, 10000, nil)
			}
		})
	}
}

// BenchmarkSQSLatency is the same through SQS (fauxqs): the notifications
// are sent in batches of ten, as S3 delivers them to a busy queue, and the
// consumer receives, applies and deletes them ten at a time. Receipt is not
// observable from outside the consumer, so p50-ms and p99-ms run from the
// send, through the queue.
//
//	SYNCER_TEST_SQS_ENDPOINT=http://127.0.0.1:4566 go test -run=NONE -bench=SQSLatency -benchtime=1x ./worker/
func BenchmarkSQSLatency(b *testing.B) {
	endpoint := needEnv(b, "SYNCER_TEST_SQS_ENDPOINT", "fauxqs")
	for _, window := range []time.Duration{0, 250 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%s", window), func(b *testing.B) {
			for range b.N {
				q := newSQSQueue(b, endpoint)
				benchNotify(b, window, 2000, 10000, q)
			}
		})
	}
}

// BenchmarkWebhookCapacity offers notifications as fast as 32 concurrent
// senders can, to find the rate the path sustains (with the default 250 ms
// window) when it, the load generator and NATS share two cores.
//
//	go test -run=NONE -bench=WebhookCapacity -benchtime=1x ./worker/
func BenchmarkWebhookCapacity(b *testing.B) {
	for range b.N {
		benchNotify(b, 250*time.Millisecond, 0, 20000, nil)
	}
}

// benchNotify offers n notifications at rate per second (0: as fast as
// they are taken) to the worker's webhook, or to q when it is not nil, and
// reports latency percentiles.
func benchNotify(b *testing.B, window time.Duration, rate, n int, q *sqsQueue) {
	benchNotifyOn(b, window, rate, n, q, "")
}

// benchNotifyOn is benchNotify with the catalog at catalogURL, a
// PostgreSQL database ("": bbolt in a temp dir).
func benchNotifyOn(b *testing.B, window time.Duration, rate, n int, q *sqsQueue, catalogURL string) {
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
	cfg := testConfig(b, nt.URL, src) // scanned at start only
	cfg.Events.CoalesceWindow = window
	if catalogURL != "" {
		cfg.Catalog = config.Catalog{URL: catalogURL}
	}

	// The start-up scan imports the bucket; then every object is
	// overwritten, and the notifications say so.
	index := func(key string) int {
		i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(key, "k/"), ".jpg"))
		return i
	}
	acked, allAcked := make([]time.Time, n), make(chan struct{})
	var nAcked atomic.Int64
	w := start(b, cfg, worker.Options{OnPublish: func(ev events.CloudEvent) {
		// Called by the source's one publisher goroutine, in order.
		now := time.Now()
		for _, c := range ev.Data.Changes {
			if c.Op == "modified" {
				acked[index(c.Key)] = now
				if nAcked.Add(1) == int64(n) {
					close(allAcked)
				}
			}
		}
	}})
	// All n imported, not just some: with a shared catalog the start-up
	// scan begins once the lease is won, and an overwrite it lists before
	// committing the key would be an addition, not the modification the
	// bench waits for.
	drainedN(b, w, n)
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
	delivered := make(map[string]time.Time, n)
	seen := make(map[string][]string, n) // every change of each key, for the failure's report
	var mu sync.Mutex
	done := make(chan struct{})
	cons := orderedConsumer(b, nt.URL, cfg.NATS.Stream, jetstream.OrderedConsumerConfig{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		ev, err := events.Decode(m.Data())
		if err != nil {
			b.Errorf("decode event: %v", err)
			return
		}
		mu.Lock()
		for _, c := range ev.Data.Changes {
			seen[c.Key] = append(seen[c.Key], fmt.Sprintf("%s/%s seq %d etag %s", c.Op, c.DetectedBy, c.Seq, c.ETag))
			if c.Op == "modified" {
				delivered[c.Key] = now
			}
		}
		if len(delivered) == n {
			close(done)
		}
		mu.Unlock()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	// The worker's handler behind a wrapper that notes when each request
	// reaches it and when it answered.
	received, handled := make([]time.Time, n), make([]time.Time, n)
	handler := w.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.Header.Get("X-Bench-Index"))
		received[i] = time.Now()
		handler.ServeHTTP(rw, r)
		handled[i] = time.Now()
	}))
	defer srv.Close()
	hook := srv.URL + "/webhooks/s3/bench"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	sent := make([]time.Time, n)
	// Bodies are built beforehand: building them takes as much CPU as
	// the path under test.
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = recordBody("bench", fmt.Sprintf("k/%06d.jpg", i), i)
	}
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
							Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(string(bodies[i])),
						})
						sent[i] = time.Now()
					}
					if _, err := q.sqs.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries}); err != nil {
						b.Error(err)
					}
					continue
				}
				i := first
				req, _ := http.NewRequest(http.MethodPost, hook, bytes.NewReader(bodies[i]))
				req.Header.Set("Authorization", "Bearer secret")
				req.Header.Set("X-Bench-Index", strconv.Itoa(i))
				sent[i] = time.Now()
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("webhook: %s", resp.Status)
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	for i := 0; i < n; i += per {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the load, not synchronisation
		}
		jobs <- i
	}
	close(jobs)
	senders.Wait()
	// The minute for the last changes to arrive runs from the last
	// request's answer, not from the first: at the rate PostgreSQL
	// sustains here (~150/s) the load itself takes over a minute, and a
	// deadline from the start expired while the last change, committed
	// and being published, was milliseconds from arriving ("only 9999 of
	// 10000 changes arrived", docs/benchmarks.md).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ch := range []chan struct{}{done, allAcked} {
		select {
		case <-ch:
		case <-ctx.Done():
			mu.Lock()
			var missing []string
			for i := range n {
				k := fmt.Sprintf("k/%06d.jpg", i)
				if _, ok := delivered[k]; !ok && len(missing) < 5 {
					e, ok, err := w.Sources()[0].Catalog.Get(context.Background(), k)
					missing = append(missing, fmt.Sprintf("%s (received %v; catalog: %v seq %d etag %s, err %v)", k, seen[k], ok, e.Seq, e.ETag, err))
				}
			}
			b.Fatalf("only %d of %d changes arrived (%d acked): missing %v", len(delivered), n, nAcked.Load(), missing)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	since := func(from, to func(i int) time.Time) []time.Duration {
		d := make([]time.Duration, n)
		for i := range n {
			d[i] = to(i).Sub(from(i))
		}
		slices.Sort(d)
		return d
	}
	at := func(ts []time.Time) func(int) time.Time { return func(i int) time.Time { return ts[i] } }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	toAck := since(at(sent), at(acked))
	if q == nil {
		toAck = since(at(received), at(acked))
		b.ReportMetric(ms(since(at(received), at(handled))[n*99/100]), "commit-p99-ms")
	}
	b.ReportMetric(ms(toAck[n/2]), "p50-ms")
	b.ReportMetric(ms(toAck[n*99/100]), "p99-ms")
	b.ReportMetric(ms(since(at(sent), func(i int) time.Time { return delivered[fmt.Sprintf("k/%06d.jpg", i)] })[n*99/100]), "sent-p99-ms")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "notifications/s")
	w.stop(b)
}

func drainedB(b *testing.B, w *running) { drainedN(b, w, 1) }

// drainedN waits until the first source's catalog holds at least n objects
// and has published them.
func drainedN(b *testing.B, w *running, n int) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st, err := w.Sources()[0].Catalog.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if st.Pending == 0 && st.Objects >= uint64(n) {
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
