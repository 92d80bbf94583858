package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// The latency benchmarks measure the notification fast path through the
// whole worker: from the moment a notification is handed to the provider's
// transport (published to the Pub/Sub topic, enqueued on the Storage Queue)
// until a JetStream subscriber receives the event holding the change it
// reports. Every notification overwrites one object the start-up scan
// imported, so each yields exactly one "modified" change.
//
//	SYNCER_TEST_AZURITE_BLOB=http://127.0.0.1:10000/devstoreaccount1 \
//	SYNCER_TEST_AZURITE_QUEUE=http://127.0.0.1:10001/devstoreaccount1 \
//	go test -run=NONE -bench='GCSLatency|AzureLatency' -benchtime=1x ./worker/

// Offered rates, each run for latencyDuration: one well below what the
// emulator can carry and one close to it, where queueing in the emulator
// begins to show in the p99. pstest hands a streaming-pull stream at most
// one message per 10 ms delivery tick (about 85 messages/s on the
// consumer's single stream, whatever the machine; real Pub/Sub has no such
// ceiling). Azurite's queue, one Node process, serves about 400 requests/s
// on this 2-core machine, and each notification costs two (the enqueue and
// the consumer's delete) plus a share of a dequeue: about 150/s is what it
// sustains, 200/s falls behind.
const latencyDuration = 5 * time.Second

// BenchmarkGCSLatency: OBJECT_FINALIZE notifications with JSON_API_V1
// payloads, published to pstest as GCS would publish them, read by the
// worker's Pub/Sub consumer, committed without a stat (the payload is
// complete) and published.
func BenchmarkGCSLatency(b *testing.B) {
	for _, rate := range []int{50, 80} {
		for _, window := range []time.Duration{0, 250 * time.Millisecond} {
			b.Run(fmt.Sprintf("rate=%d/window=%s", rate, window), func(b *testing.B) {
				for range b.N {
					benchGCSLatency(b, window, rate, latencyDuration)
				}
			})
		}
	}
}

// BenchmarkAzureLatency: Event Grid BlobCreated events carrying ETag and
// length, enqueued base64-encoded on an Azurite Storage Queue as Event
// Grid's queue handler does, read by the worker's queue consumer,
// committed without a stat and published. Storage Queues cannot long-poll:
// a dequeue that finds the queue empty makes the consumer wait its minimum
// poll interval (100 ms), which shows in the p99.
func BenchmarkAzureLatency(b *testing.B) {
	for _, rate := range []int{100, 150} {
		for _, window := range []time.Duration{0, 250 * time.Millisecond} {
			b.Run(fmt.Sprintf("rate=%d/window=%s", rate, window), func(b *testing.B) {
				for range b.N {
					benchAzureLatency(b, window, rate, latencyDuration)
				}
			})
		}
	}
}

// latencyKey is the key of notification i; key n (one past the measured
// ones) warms the path up.
func latencyKey(i int) string { return fmt.Sprintf("k/%06d.png", i) }

// latencyConfig is the worker configuration both benchmarks share: one
// source, scanned at start only, stats allowed far above the offered rate
// so that the limiter, should anything stat, is not what is measured.
func latencyConfig(b *testing.B, natsURL string, window time.Duration, rate int, src config.Source) *config.Config {
	src.Prefix = "k/"
	cfg := testConfig(b, natsURL, src) // no scan but the start-up one during the run
	cfg.Events.CoalesceWindow = window
	cfg.Notify.StatRate, cfg.Notify.StatBurst = float64(10*rate), 10*rate
	return cfg
}

func benchGCSLatency(b *testing.B, window time.Duration, rate int, dur time.Duration) {
	n := rate * int(dur/time.Second)
	ctx := context.Background()
	ps := pstest.NewServer()
	b.Cleanup(func() { ps.Close() })
	b.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	topic := "projects/" + gcsProject + "/topics/" + uniq("gcs-events")
	sub := uniq("syncer")
	if _, err := ps.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		b.Fatal(err)
	}
	if _, err := ps.GServer.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + gcsProject + "/subscriptions/" + sub, Topic: topic, AckDeadlineSeconds: 10,
	}); err != nil {
		b.Fatal(err)
	}
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1", Writer: quietWriter{},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fake.Stop)
	b.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(fake.URL(), "http://"))
	bucket := uniq("gcs")
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	// The bucket has no notification configuration: the benchmark publishes
	// the notifications itself, at the rate it chooses. Objects are written
	// in process, not through the JSON API: setup only, and quicker.
	put := func(key, body string) {
		fake.CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: key, ContentType: "image/png"},
			Content:     []byte(body),
		})
	}
	for i := range n + 1 {
		put(latencyKey(i), "x")
	}

	nt := testkit.StartNATS(b, b.TempDir(), 0)
	src := config.Source{ID: "bench", Provider: "gcs", Bucket: bucket}
	src.Notifications.PubSub = &config.PubSub{Project: gcsProject, Subscription: sub}
	cfg := latencyConfig(b, nt.URL, window, rate, src)
	w := start(b, cfg)
	defer w.stop(b) // before the next iteration starts another
	drainedB(b, w)

	// Overwrite every object and build the notification GCS would publish
	// for the new generation (without the OBJECT_DELETE of the old one,
	// which the consumer skips anyway).
	type message struct {
		data  []byte
		attrs map[string]string
	}
	msgs := make([]message, n+1)
	for i := range msgs {
		key := latencyKey(i)
		old, err := fake.GetObject(bucket, key)
		if err != nil {
			b.Fatal(err)
		}
		put(key, "version 2")
		cur, err := fake.GetObject(bucket, key)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i].data, msgs[i].attrs = gcsFinalize(cur.ObjectAttrs, old.Generation)
	}

	runLatency(b, latencyLoad{
		natsURL: nt.URL, stream: cfg.NATS.Stream, n: n, rate: rate,
		// Publishing into pstest is an in-process call: a few senders keep
		// up with any rate it can deliver.
		senders: 4,
		send: func(i int) error {
			ps.Publish(topic, msgs[i].data, msgs[i].attrs)
			return nil
		},
	})
}

// gcsFinalize is the OBJECT_FINALIZE notification of o, a new generation
// replacing generation overwrote: the Pub/Sub attributes and the
// JSON_API_V1 payload (the object resource, 64-bit numbers as strings).
func gcsFinalize(o fakestorage.ObjectAttrs, overwrote int64) ([]byte, map[string]string) {
	gen := strconv.FormatInt(o.Generation, 10)
	data, _ := json.Marshal(map[string]string{
		"kind": "storage#object", "id": o.BucketName + "/" + o.Name + "/" + gen,
		"name": o.Name, "bucket": o.BucketName, "generation": gen, "metageneration": "1",
		"contentType": o.ContentType, "storageClass": "STANDARD", "size": strconv.FormatInt(o.Size, 10),
		"md5Hash": o.Md5Hash, "crc32c": o.Crc32c, "etag": o.Etag,
		"timeCreated": o.Created.UTC().Format(time.RFC3339Nano), "updated": o.Updated.UTC().Format(time.RFC3339Nano),
	})
	attrs := map[string]string{
		"notificationConfig": "projects/_/buckets/" + o.BucketName + "/notificationConfigs/1",
		"eventType":          "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1",
		"bucketId": o.BucketName, "objectId": o.Name, "objectGeneration": gen,
		"eventTime":           time.Now().UTC().Format(time.RFC3339Nano),
		"overwroteGeneration": strconv.FormatInt(overwrote, 10),
	}
	return data, attrs
}

func benchAzureLatency(b *testing.B, window time.Duration, rate int, dur time.Duration) {
	blobURL, queueURL := os.Getenv("SYNCER_TEST_AZURITE_BLOB"), os.Getenv("SYNCER_TEST_AZURITE_QUEUE")
	if blobURL == "" || queueURL == "" {
		b.Skip("SYNCER_TEST_AZURITE_BLOB and SYNCER_TEST_AZURITE_QUEUE are not set: start Azurite (testenv) to run this benchmark")
	}
	n := rate * int(dur/time.Second)
	// Azurite serves blobs and queues from one Node event loop: when
	// something else floods it, fail rather than hang.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := "DefaultEndpointsProtocol=http;AccountName=" + azAccount + ";AccountKey=" + azKey +
		";BlobEndpoint=" + strings.TrimRight(blobURL, "/") + ";QueueEndpoint=" + strings.TrimRight(queueURL, "/") + ";"
	blob, err := azblob.NewClientFromConnectionString(conn, nil)
	if err != nil {
		b.Fatal(err)
	}
	container := uniq("bench")
	if _, err := blob.CreateContainer(ctx, container, nil); err != nil {
		b.Fatalf("create container: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = blob.DeleteContainer(ctx, container, nil)
	})
	svc, err := azqueue.NewServiceClientFromConnectionString(conn, nil)
	if err != nil {
		b.Fatal(err)
	}
	queueName := uniq("bench")
	queue := svc.NewQueueClient(queueName)
	if _, err := queue.Create(ctx, nil); err != nil {
		b.Fatalf("create queue: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = queue.Delete(ctx, nil)
		_, _ = svc.NewQueueClient(queueName+"-poison").Delete(ctx, nil)
	})
	// upload writes every blob, 16 at a time; the ETags as Event Grid
	// sends them (unquoted).
	upload := func(body string) []string {
		etags := make([]string, n+1)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i <= n; i += 16 {
					resp, err := blob.UploadBuffer(ctx, container, latencyKey(i), []byte(body), nil)
					if err != nil {
						b.Errorf("upload %s: %v", latencyKey(i), err)
						return
					}
					etags[i] = strings.Trim(string(*resp.ETag), `"`)
				}
			}()
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		return etags
	}
	upload("x")

	nt := testkit.StartNATS(b, b.TempDir(), 0)
	src := config.Source{ID: "bench", Provider: "azure", Container: container, Azure: config.Azure{ConnectionString: conn}}
	src.Notifications.StorageQueue = &config.StorageQueue{Queue: queueName}
	cfg := latencyConfig(b, nt.URL, window, rate, src)
	w := start(b, cfg)
	defer w.stop(b) // before the next iteration starts another
	drainedB(b, w)

	const body = "version 2"
	etags := upload(body)
	msgs := make([]string, n+1)
	for i := range msgs {
		msgs[i] = base64.StdEncoding.EncodeToString(egCreated(container, latencyKey(i), etags[i], len(body), i+1))
	}
	runLatency(b, latencyLoad{
		natsURL: nt.URL, stream: cfg.NATS.Stream, n: n, rate: rate,
		// An enqueue takes milliseconds in Azurite: enough senders that
		// the offered rate does not wait for them.
		senders: 16,
		send: func(i int) error {
			_, err := queue.EnqueueMessage(ctx, msgs[i], nil)
			return err
		},
	})
}

// egCreated is the BlobCreated event (Event Grid schema) of a block blob
// upload; seq is its sequencer. The names here need no escaping in
// data.url.
func egCreated(container, name, etag string, size, seq int) []byte {
	ev, _ := json.Marshal(map[string]any{
		"topic":     "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/" + azAccount,
		"subject":   "/blobServices/default/containers/" + container + "/blobs/" + name,
		"eventType": "Microsoft.Storage.BlobCreated", "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"id": uniq("ev"), "dataVersion": "", "metadataVersion": "1",
		"data": map[string]any{
			"api": "PutBlob", "blobType": "BlockBlob", "sequencer": fmt.Sprintf("%032X", seq),
			"url":  "https://" + azAccount + ".blob.core.windows.net/" + container + "/" + name,
			"eTag": etag, "contentLength": size, "contentType": "image/png",
		},
	})
	return ev
}

// latencyLoad is one measured run: notification i (0 <= i < n) reports
// the overwrite of latencyKey(i); notification n warms the path up.
type latencyLoad struct {
	natsURL, stream  string
	n, rate, senders int
	// send hands notification i to the provider's transport.
	send func(i int) error
}

// arrivals records when each key's "modified" change reached the
// subscriber.
type arrivals struct {
	mu    sync.Mutex
	at    map[string]time.Time
	other int           // changes detected otherwise than by notification
	more  chan struct{} // signalled after every arrival
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at)
}

// wait waits until want keys have arrived.
func (a *arrivals) wait(ctx context.Context, want int) error {
	for a.count() < want {
		select {
		case <-a.more:
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d changes arrived: %w", a.count(), want, ctx.Err())
		}
	}
	return nil
}

// runLatency subscribes to the stream, warms the path up with
// notification n, offers notifications 0..n-1 at l.rate and reports the
// latency percentiles and the throughput.
func runLatency(b *testing.B, l latencyLoad) {
	nc, err := nats.Connect(l.natsURL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Only what is published from now on: the start-up scan's events are
	// in the stream already.
	cons, err := js.OrderedConsumer(ctx, l.stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	arr := &arrivals{at: make(map[string]time.Time, l.n+1), more: make(chan struct{}, 1)}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		ev, err := events.Decode(m.Data())
		if err != nil {
			b.Errorf("decode event: %v", err)
			return
		}
		arr.mu.Lock()
		for _, c := range ev.Data.Changes {
			if c.Op != "modified" {
				continue
			}
			if c.DetectedBy != "notification" {
				arr.other++
			}
			if _, dup := arr.at[c.Key]; !dup {
				arr.at[c.Key] = now
			}
		}
		arr.mu.Unlock()
		select {
		case arr.more <- struct{}{}:
		default:
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()

	// The warm-up wakes a consumer that idled through the start-up scan (a
	// Storage Queue consumer polls ever more slowly while its queue is
	// empty), so that the run measures the path under load, not its
	// wake-up.
	if err := l.send(l.n); err != nil {
		b.Fatalf("warm-up: %v", err)
	}
	if err := arr.wait(ctx, 1); err != nil {
		b.Fatalf("warm-up: %v", err)
	}

	sent := make([]time.Time, l.n)
	jobs := make(chan int, l.n)
	var senders sync.WaitGroup
	for range l.senders {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := range jobs {
				sent[i] = time.Now()
				if err := l.send(i); err != nil {
					b.Errorf("send %d: %v", i, err)
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / time.Duration(l.rate)
	for i := range l.n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the load, not synchronisation
		}
		jobs <- i
	}
	close(jobs)
	senders.Wait()
	offered := time.Since(start)
	if err := arr.wait(ctx, l.n+1); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	arr.mu.Lock()
	defer arr.mu.Unlock()
	if arr.other > 0 {
		b.Errorf("%d changes were not detected by notification", arr.other)
	}
	lat := make([]time.Duration, 0, l.n)
	last := start
	for i := range l.n {
		at := arr.at[latencyKey(i)]
		lat = append(lat, at.Sub(sent[i]))
		if at.After(last) {
			last = at
		}
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[l.n/2]), "p50-ms")
	b.ReportMetric(ms(lat[l.n*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[l.n-1]), "max-ms")
	b.ReportMetric(float64(l.n)/last.Sub(start).Seconds(), "notifications/s")
	// Whether the senders kept the offered rate: when they did not, the
	// transport's enqueue is the bottleneck, not the worker.
	b.ReportMetric(float64(l.n)/offered.Seconds(), "offered/s")
}
