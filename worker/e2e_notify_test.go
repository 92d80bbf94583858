package worker_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/events"
	"github.com/imgly/syncer/internal/testkit"
)

// End to end through the whole worker (worker.New + Run): notification
// bodies reach the worker's consumers and webhooks from real protocol
// servers (fauxqs for SQS and SNS, pstest fed by fake-gcs-server, Azurite's
// queue), pass the notify.Router (stats against gofakes3, fake-gcs-server,
// Azurite), are committed to the catalog and published to JetStream, where
// a subscriber checks what arrived, how it was detected, and that the next
// scan does not publish it again.

// needEnv returns the emulator address in env var name; without it the
// test fails in CI and is skipped elsewhere.
func needEnv(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must start %s (see scripts/test.sh)", name, what)
		}
		t.Skipf("%s is not set: start %s (testenv) to run this test", name, what)
	}
	return strings.TrimRight(v, "/")
}

// uniq is a name no other test run uses: lower-case letters, digits and
// dashes, valid for S3 buckets, SQS queues, Azure containers and queues.
func uniq(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// expectBy is subscriber.expect, and checks that every one of the changes
// was detected by detectedBy ("scan" or "notification").
func (s *subscriber) expectBy(detectedBy string, want ...change) {
	s.t.Helper()
	s.expect(want...)
	var all []events.Change
	for _, ev := range s.seen {
		all = append(all, ev.Data.Changes...)
	}
	for _, c := range all[len(all)-len(want):] {
		if c.DetectedBy != detectedBy {
			s.t.Errorf("%s %s detected by %q, want %q", c.Op, c.Key, c.DetectedBy, detectedBy)
		}
	}
}

// startupScanned waits until the worker's start-up scan of source id is
// over, so that what the test changes next is for the notifications to
// report. (running.scan does not ensure this: a scan it triggers may run
// before the start-up scan begins.)
func startupScanned(t *testing.T, w *running, id string) {
	t.Helper()
	waitMetric(t, w.HTTPAddr(), 1, "syncer_scans_total", `source="`+id+`"`, `result="ok"`)
}

// metric sums the samples of the metric name, on the worker's /metrics,
// whose labels include every one of labels (each `k="v"`).
func metric(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(series, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// waitMetric waits until metric(...) reaches want.
func waitMetric(t *testing.T, addr string, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := metric(t, addr, name, labels...)
		if got >= want {
			if got > want {
				t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s%v to reach %v (at %v)", name, labels, want, got)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

// waitHandledMetric waits for syncer_notifications_total{labels} to count
// want notifications that were applied or changed nothing (duplicates, late
// ones), and fails if it counts more.
func waitHandledMetric(t *testing.T, addr string, want float64, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := metric(t, addr, "syncer_notifications_total", append(labels, `outcome="applied"`)...) +
			metric(t, addr, "syncer_notifications_total", append(labels, `outcome="skipped_stale"`)...)
		if got == want {
			return
		}
		if got > want {
			t.Fatalf("handled notifications%v = %v, want %v", labels, got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for handled notifications%v to reach %v (at %v)", labels, want, got)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

func md5Hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --- S3: SQS (fauxqs), SNS and EventBridge bodies, webhook ---

// s3Record is an AWS S3 event record (eventVersion 2.1); key is already
// form-encoded, as S3 sends it.
func s3Record(name, bucket, key string, size int, etag, seq string) map[string]any {
	obj := map[string]any{"key": key, "sequencer": seq}
	if size > 0 {
		obj["size"] = size
		obj["eTag"] = etag
	}
	return map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano), "eventName": name,
		"userIdentity":      map[string]any{"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
		"requestParameters": map[string]any{"sourceIPAddress": "127.0.0.1"},
		"responseElements":  map[string]any{"x-amz-request-id": "C3D13FE58DE4C810"},
		"s3": map[string]any{
			"s3SchemaVersion": "1.0", "configurationId": "syncer",
			"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
			"object": obj,
		},
	}
}

func s3Records(t testing.TB, records ...map[string]any) string {
	return mustJSON(t, map[string]any{"Records": records})
}

// eventBridgeCreated is an "Object Created" event as an EventBridge rule
// delivers it to SQS.
func eventBridgeCreated(t *testing.T, bucket, key string, size int, etag, seq string) string {
	return mustJSON(t, map[string]any{
		"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
		"source": "aws.s3", "account": "123456789012", "time": time.Now().UTC().Format(time.RFC3339),
		"region": "us-east-1", "resources": []string{"arn:aws:s3:::" + bucket},
		"detail": map[string]any{
			"version": "0", "bucket": map[string]any{"name": bucket},
			"object":     map[string]any{"key": key, "size": size, "etag": etag, "sequencer": seq},
			"request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject",
		},
	})
}

// sqsQueue is a fresh queue on fauxqs, with an SNS client for topics
// delivering to it.
type sqsQueue struct {
	sqs *sqs.Client
	sns *sns.Client
	url string
	arn string
}

func newSQSQueue(t testing.TB, endpoint string) *sqsQueue {
	t.Helper()
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	q := &sqsQueue{
		sqs: sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: creds}),
		sns: sns.New(sns.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: creds}),
	}
	ctx := t.Context()
	out, err := q.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(uniq("worker-e2e"))})
	if err != nil {
		t.Fatalf("create queue at %s: %v", endpoint, err)
	}
	q.url = aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		_, _ = q.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	attrs, err := q.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	q.arn = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	return q
}

func (q *sqsQueue) send(t testing.TB, body string) {
	t.Helper()
	if _, err := q.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: aws.String(body)}); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// topic is an SNS topic delivering to the queue in the SNS envelope (raw
// message delivery off), the way S3 -> SNS -> SQS fan-out is set up.
func (q *sqsQueue) topic(t *testing.T) string {
	t.Helper()
	out, err := q.sns.CreateTopic(t.Context(), &sns.CreateTopicInput{Name: aws.String(uniq("worker-e2e"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = q.sns.DeleteTopic(context.Background(), &sns.DeleteTopicInput{TopicArn: out.TopicArn}) })
	if _, err := q.sns.Subscribe(t.Context(), &sns.SubscribeInput{
		TopicArn: out.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(q.arn), ReturnSubscriptionArn: true,
	}); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.TopicArn)
}

func (q *sqsQueue) publish(t *testing.T, topicARN, message string) {
	t.Helper()
	if _, err := q.sns.Publish(t.Context(), &sns.PublishInput{
		TopicArn: aws.String(topicARN), Message: aws.String(message), Subject: aws.String("Amazon S3 Notification"),
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSQSNotificationsEndToEnd: S3 notifications on SQS (direct, through
// SNS, from EventBridge) are published as changes detected by
// notification; duplicates and a create arriving after the newer delete of
// its key publish nothing; a scan afterwards publishes nothing again.
func TestSQSNotificationsEndToEnd(t *testing.T) {
	endpoint := needEnv(t, "SYNCER_TEST_SQS_ENDPOINT", "fauxqs")
	q := newSQSQueue(t, endpoint)
	s3 := testkit.StartS3(t, nil) // sets the AWS credentials the consumer's default chain reads
	bucket := uniq("sqs")
	s3.CreateBucket(t, bucket)
	s3.Put(t, bucket, "pre/existing.jpg", []byte("before"), "image/jpeg")

	n := testkit.StartNATS(t, t.TempDir(), 0)
	src := s3.SourceConfig("sqs-src", bucket)
	src.Notifications.SQS = &config.SQS{QueueURL: q.url, Endpoint: endpoint}
	cfg := testConfig(t, n.URL, src)
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.sqs-src")
	sub.expectBy("scan", change{"added", "pre/existing.jpg"})
	startupScanned(t, w, "sqs-src") // what follows is the notifications'
	w.drained(t)
	sub.none()
	addr := w.HTTPAddr()
	handled := 0.0
	waitHandled := func(more int) {
		t.Helper()
		handled += float64(more)
		// Handled: applied, or a duplicate or late one that changed nothing.
		waitHandledMetric(t, addr, handled, `transport="sqs"`)
	}

	// A create, its key form-encoded (space as '+', '+' as %2B).
	const key = "photos/a b+c.jpg"
	s3.Put(t, bucket, key, []byte("one"), "image/jpeg")
	created := s3Records(t, s3Record("ObjectCreated:Put", bucket, "photos/a+b%2Bc.jpg", 3, md5Hex("one"), "0055AED6DCD90281E5"))
	q.send(t, created)
	sub.expectBy("notification", change{"added", key})
	if c := sub.seen[len(sub.seen)-1].Data.Changes[0]; c.Size != 3 || c.ETag != md5Hex("one") || c.LastModified.IsZero() {
		t.Errorf("notified change lacks detail: %+v", c)
	}
	waitHandled(1)

	// S3 delivers at least once: the same message again.
	q.send(t, created)
	// Reordering: the deletion (newer sequencer) arrives before the
	// creation it follows; the object is gone from the bucket.
	const late = "photos/late.jpg"
	s3.Put(t, bucket, late, []byte("brief"), "image/jpeg")
	s3.Delete(t, bucket, late)
	q.send(t, s3Records(t, s3Record("ObjectRemoved:Delete", bucket, "photos/late.jpg", 0, "", "0055AED6DCD90281F2")))
	waitHandled(2)
	q.send(t, s3Records(t, s3Record("ObjectCreated:Put", bucket, "photos/late.jpg", 5, md5Hex("brief"), "0055AED6DCD90281F1")))
	waitHandled(1)
	w.drained(t)
	sub.none()

	// Through SNS (the S3 body wrapped in the SNS envelope), and from
	// EventBridge.
	topic := q.topic(t)
	s3.Put(t, bucket, "sns/x y.png", []byte("sns"), "image/png")
	q.publish(t, topic, s3Records(t, s3Record("ObjectCreated:Put", bucket, "sns/x+y.png", 3, md5Hex("sns"), "0055AED6DCD90281F3")))
	sub.expectBy("notification", change{"added", "sns/x y.png"})
	s3.Put(t, bucket, "eb/c++ d.png", []byte("eventbridge"), "image/png")
	q.send(t, eventBridgeCreated(t, bucket, "eb/c%2B%2B+d.png", 11, md5Hex("eventbridge"), "0055AED6DCD90281F4"))
	sub.expectBy("notification", change{"added", "eb/c++ d.png"})
	waitHandled(2)

	// The scan finds the bucket as the notifications described it.
	w.scan(t, "sqs-src")
	w.drained(t)
	sub.none()
	if got := metric(t, addr, "syncer_notifications_total", `transport="sqs"`, `outcome="failed"`); got != 0 {
		t.Errorf("%v applies failed", got)
	}
	// The changes the notifications committed were timed from their event
	// times; the consumer shows as running, with its last message.
	if got := metric(t, addr, "syncer_notification_lag_seconds_count", `source="sqs-src"`, `transport="sqs"`); got < 3 {
		t.Errorf("notification lag observed %v times, want at least 3", got)
	}
	st, err := w.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ns := st.Sources[0].Notifications; len(ns) != 1 || ns[0].Transport != "sqs" || ns[0].State != "running" || ns[0].LastMessageAt == nil {
		t.Errorf("notifications in /status: %+v", ns)
	}
}

// minioBody is a MinIO webhook body for one record: eventName keeps "s3:",
// the record's key is QueryEscape'd, the wrapper's Key is bucket/<raw key>.
func minioBody(t *testing.T, name, bucket, key string, size int, etag, seq string) string {
	r := s3Record(name, bucket, url.QueryEscape(key), size, etag, seq)
	r["eventVersion"], r["eventSource"], r["awsRegion"] = "2.0", "minio:s3", ""
	return mustJSON(t, map[string]any{"EventName": name, "Key": bucket + "/" + key, "Records": []any{r}})
}

// TestS3WebhookEndToEnd: an S3-compatible store's webhook, on the worker's
// HTTP listener, refuses requests without the token and publishes what an
// authenticated request reports.
func TestS3WebhookEndToEnd(t *testing.T) {
	s3 := testkit.StartS3(t, nil)
	bucket := uniq("hook")
	s3.CreateBucket(t, bucket)
	n := testkit.StartNATS(t, t.TempDir(), 0)
	src := s3.SourceConfig("hook-src", bucket)
	const token = "s3cr3t-t0ken"
	src.Notifications.Webhook = &config.Webhook{Token: token}
	cfg := testConfig(t, n.URL, src)
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.hook-src")
	startupScanned(t, w, "hook-src")
	hook := "http://" + w.HTTPAddr() + "/webhooks/s3/hook-src"
	post := func(auth, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hook, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	s3.Put(t, bucket, "minio dir/sneaky+1.png", []byte("sneaky"), "image/png")
	sneaky := minioBody(t, "s3:ObjectCreated:Put", bucket, "minio dir/sneaky+1.png", 6, md5Hex("sneaky"), "17A9E1B2C3D4E5F6")
	if code := post("", sneaky); code != http.StatusUnauthorized {
		t.Fatalf("no token: status %d, want 401", code)
	}
	if code := post("Bearer wrong", sneaky); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d, want 401", code)
	}
	w.drained(t)
	sub.none()

	s3.Put(t, bucket, "minio dir/a+b.png", []byte("minio"), "image/png")
	ok := minioBody(t, "s3:ObjectCreated:Put", bucket, "minio dir/a+b.png", 5, md5Hex("minio"), "17A9E1B2C3D4E5F7")
	if code := post("Bearer "+token, ok); code != http.StatusOK {
		t.Fatalf("with token: status %d", code)
	}
	sub.expectBy("notification", change{"added", "minio dir/a+b.png"})
	w.drained(t)
	sub.none() // the refused requests published nothing

	// The next scan finds the unannounced object, and only that.
	w.scan(t, "hook-src")
	sub.expectBy("scan", change{"added", "minio dir/sneaky+1.png"})
	w.drained(t)
	sub.none()
}

// --- GCS: fake-gcs-server publishing to pstest ---

const gcsProject = "syncer-test"

// gcsEnv is a Pub/Sub fake with a topic and a subscription, and
// fake-gcs-server whose notifications go to that topic. Both the worker
// and fake-gcs-server find them through the emulator variables.
type gcsEnv struct {
	fake   *fakestorage.Server
	client *storage.Client
	topic  string // topic id
	sub    string // subscription id
}

func startGCS(t *testing.T) *gcsEnv {
	t.Helper()
	ctx := context.Background()
	ps := pstest.NewServer()
	t.Cleanup(func() { ps.Close() })
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	g := &gcsEnv{topic: uniq("gcs-events"), sub: uniq("syncer")}
	admin, err := pubsub.NewClient(ctx, gcsProject)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := "projects/" + gcsProject + "/topics/" + g.topic
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + gcsProject + "/subscriptions/" + g.sub, Topic: topic, AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
	g.fake, err = fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1",
		PublicHost: "127.0.0.1", // without it the fake answers every read with "not found"
		Writer:     quietWriter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.fake.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(g.fake.URL(), "http://"))
	if g.client, err = storage.NewClient(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.client.Close() })
	return g
}

// quietWriter discards fake-gcs-server's request log.
type quietWriter struct{}

func (quietWriter) Write(p []byte) (int, error) { return len(p), nil }

// bucket creates a bucket, publishing its notifications (JSON_API_V1) when
// notifying.
func (g *gcsEnv) bucket(t *testing.T, name string, notifying bool) *storage.BucketHandle {
	t.Helper()
	g.fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	b := g.client.Bucket(name)
	if notifying {
		if _, err := b.AddNotification(context.Background(), &storage.Notification{
			TopicProjectID: gcsProject, TopicID: g.topic, PayloadFormat: storage.JSONPayload,
		}); err != nil {
			t.Fatalf("add notification: %v", err)
		}
	}
	return b
}

func (g *gcsEnv) source(id, bucket string, notifying bool) config.Source {
	src := config.Source{ID: id, Provider: "gcs", Bucket: bucket}
	if notifying {
		src.Notifications.PubSub = &config.PubSub{Project: gcsProject, Subscription: g.sub}
	}
	return src
}

func gcsPut(t *testing.T, b *storage.BucketHandle, key, body string) {
	t.Helper()
	w := b.Object(key).NewWriter(context.Background())
	w.ContentType = "image/png"
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func gcsDelete(t *testing.T, b *storage.BucketHandle, key string) {
	t.Helper()
	if err := b.Object(key).Delete(context.Background()); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// TestGCSNotificationsEndToEnd: create, overwrite and delete, notified
// through Pub/Sub, are published as added, one modified (the overwritten
// generation's archive is not a deletion), deleted; a scan afterwards
// publishes nothing.
func TestGCSNotificationsEndToEnd(t *testing.T) {
	g := startGCS(t)
	name := uniq("gcs")
	b := g.bucket(t, name, true)
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, g.source("gcs-src", name, true))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.gcs-src")
	startupScanned(t, w, "gcs-src")

	const key = "albums/a b+c.png"
	gcsPut(t, b, key, "one")
	sub.expectBy("notification", change{"added", key})
	gcsPut(t, b, key, "two, longer")
	sub.expectBy("notification", change{"modified", key})
	if c := sub.seen[len(sub.seen)-1].Data.Changes[0]; c.Size != int64(len("two, longer")) || c.Version == "" {
		t.Errorf("modified change lacks detail: %+v", c)
	}
	gcsDelete(t, b, key)
	sub.expectBy("notification", change{"deleted", key})
	gcsPut(t, b, "albums/stays.png", "stays")
	sub.expectBy("notification", change{"added", "albums/stays.png"})

	// The archive of the overwritten generation has been handled by now or
	// is handled during the scan; neither publishes anything.
	w.scan(t, "gcs-src")
	w.drained(t)
	sub.none()
	waitHandledMetric(t, w.HTTPAddr(), 4, `source="gcs-src"`)
	waitMetric(t, w.HTTPAddr(), 1, "syncer_notifications_total", `source="gcs-src"`, `outcome="skipped_ignored"`)
	w.drained(t)
	sub.none()
}

// TestGCSCatchUpAfterRestart: what changed in the bucket while the worker
// was down is published once it is back, and nothing else.
func TestGCSCatchUpAfterRestart(t *testing.T) {
	g := startGCS(t)
	name := uniq("gcs")
	b := g.bucket(t, name, false)
	for _, k := range []string{"a.png", "b.png", "c.png"} {
		gcsPut(t, b, k, "v1 "+k)
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, g.source("gcs-src", name, false))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.gcs-src")
	sub.expectBy("scan", added("a.png", "b.png", "c.png")...)
	w.scan(t, "gcs-src")
	w.drained(t)
	w.stop(t)

	// While the worker is down.
	gcsPut(t, b, "c.png", "v2 is longer")
	gcsDelete(t, b, "a.png")
	gcsPut(t, b, "b2.png", "new")

	w = start(t, cfg)
	sub.expectBy("scan", change{"added", "b2.png"}, change{"modified", "c.png"}, change{"deleted", "a.png"})
	w.scan(t, "gcs-src")
	w.drained(t)
	sub.none()
}

// TestGCSCatchUpWithQueuedNotifications: the notifications of what changed
// while the worker was down wait in the subscription; at start they race
// the start-up scan. Each change is published exactly once, whichever
// detects it first.
func TestGCSCatchUpWithQueuedNotifications(t *testing.T) {
	g := startGCS(t)
	name := uniq("gcs")
	b := g.bucket(t, name, true)
	gcsPut(t, b, "a.png", "v1 a")
	gcsPut(t, b, "c.png", "v1 c")
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, g.source("gcs-src", name, true))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.gcs-src")
	// The scan and the notifications of the two creates race: one of them
	// publishes each.
	sub.expectSet(added("a.png", "c.png")...)
	w.scan(t, "gcs-src")
	// Both notifications are acknowledged: none is left for the next run.
	waitHandledMetric(t, w.HTTPAddr(), 2, `source="gcs-src"`)
	w.drained(t)
	sub.none()
	w.stop(t)

	gcsPut(t, b, "c.png", "v2 is longer")
	gcsDelete(t, b, "a.png")
	gcsPut(t, b, "b2.png", "new")

	w = start(t, cfg)
	sub.expectSet(change{"added", "b2.png"}, change{"modified", "c.png"}, change{"deleted", "a.png"})
	w.scan(t, "gcs-src")
	w.drained(t)
	// Every queued notification is handled by the new run: two finalizes
	// and a delete applied, the archive of the overwritten generation
	// skipped.
	waitHandledMetric(t, w.HTTPAddr(), 3, `source="gcs-src"`)
	waitMetric(t, w.HTTPAddr(), 1, "syncer_notifications_total", `source="gcs-src"`, `outcome="skipped_ignored"`)
	w.drained(t)
	sub.none()
}

// expectSet is expect for changes whose order is not determined (a scan
// racing notifications): it reads len(want) changes and checks they are
// want in some order.
func (s *subscriber) expectSet(want ...change) {
	s.t.Helper()
	got := s.read(len(want), fmt.Sprint(want)+" in any order")
	left := map[change]int{}
	for _, c := range want {
		left[c]++
	}
	for _, c := range got {
		left[c]--
	}
	for c, k := range left {
		if k != 0 {
			s.t.Fatalf("changes:\n got %v\nwant %v in any order (%v off by %d)", got, want, c, -k)
		}
	}
}

// --- Azure: Azurite blob and queue ---

// The well-known Azurite account.
const (
	azAccount = "devstoreaccount1"
	azKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azEnv is a fresh container (and queue) in Azurite.
type azEnv struct {
	conn      string
	blob      *azblob.Client
	container string
	queue     *azqueue.QueueClient
	queueName string
}

func startAzure(t *testing.T, withQueue bool) *azEnv {
	t.Helper()
	blobURL := needEnv(t, "SYNCER_TEST_AZURITE_BLOB", "Azurite")
	queueURL := needEnv(t, "SYNCER_TEST_AZURITE_QUEUE", "Azurite")
	ctx := context.Background()
	a := &azEnv{
		conn: "DefaultEndpointsProtocol=http;AccountName=" + azAccount + ";AccountKey=" + azKey +
			";BlobEndpoint=" + blobURL + ";QueueEndpoint=" + queueURL + ";",
		container: uniq("worker-e2e"),
	}
	var err error
	if a.blob, err = azblob.NewClientFromConnectionString(a.conn, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.blob.CreateContainer(ctx, a.container, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { _, _ = a.blob.DeleteContainer(context.Background(), a.container, nil) })
	if withQueue {
		svc, err := azqueue.NewServiceClientFromConnectionString(a.conn, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.queueName = uniq("worker-e2e")
		a.queue = svc.NewQueueClient(a.queueName)
		if _, err := a.queue.Create(ctx, nil); err != nil {
			t.Fatalf("create queue: %v", err)
		}
		t.Cleanup(func() {
			_, _ = a.queue.Delete(context.Background(), nil)
			_, _ = svc.NewQueueClient(a.queueName+"-poison").Delete(context.Background(), nil)
		})
	}
	return a
}

func (a *azEnv) source(id string) config.Source {
	src := config.Source{ID: id, Provider: "azure", Container: a.container, Azure: config.Azure{ConnectionString: a.conn}}
	if a.queue != nil {
		src.Notifications.StorageQueue = &config.StorageQueue{Queue: a.queueName}
	}
	return src
}

// put uploads a blob and returns its ETag as Event Grid sends it, unquoted.
func (a *azEnv) put(t *testing.T, name, body string) string {
	t.Helper()
	resp, err := a.blob.UploadBuffer(context.Background(), a.container, name, []byte(body), nil)
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return strings.Trim(string(*resp.ETag), `"`)
}

func (a *azEnv) del(t *testing.T, name string) {
	t.Helper()
	if _, err := a.blob.DeleteBlob(context.Background(), a.container, name, nil); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

// enqueue puts an Event Grid event on the queue base64-encoded, as Event
// Grid's Storage Queue handler does.
func (a *azEnv) enqueue(t *testing.T, event string) {
	t.Helper()
	if _, err := a.queue.EnqueueMessage(context.Background(), base64.StdEncoding.EncodeToString([]byte(event)), nil); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// egBlobEvent is a blob event in the Event Grid schema: the subject carries
// the raw name, data.url the percent-encoded one. A BlobCreated with etag
// carries the length too.
func egBlobEvent(t *testing.T, eventType, api, container, name, etag string, size int, seq string) string {
	data := map[string]any{
		"api": api, "blobType": "BlockBlob", "sequencer": seq,
		"url": "https://" + azAccount + ".blob.core.windows.net/" + container + "/" + url.PathEscape(name),
	}
	if etag != "" {
		data["eTag"], data["contentLength"], data["contentType"] = etag, size, "image/png"
	}
	return mustJSON(t, map[string]any{
		"topic":     "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/" + azAccount,
		"subject":   "/blobServices/default/containers/" + container + "/blobs/" + name,
		"eventType": eventType, "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"id": uniq("ev"), "data": data, "dataVersion": "", "metadataVersion": "1",
	})
}

// TestAzureNotificationsEndToEnd: BlobCreated and BlobDeleted from the
// Storage Queue are published as added and deleted; a scan afterwards
// publishes nothing.
func TestAzureNotificationsEndToEnd(t *testing.T) {
	a := startAzure(t, true)
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, a.source("az-src"))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.az-src")
	startupScanned(t, w, "az-src")

	const name = "photos/a b+c.png"
	etag := a.put(t, name, "azure blob")
	a.enqueue(t, egBlobEvent(t, "Microsoft.Storage.BlobCreated", "PutBlob", a.container, name, etag, len("azure blob"),
		"00000000000004420000000000028963"))
	sub.expectBy("notification", change{"added", name})
	if c := sub.seen[len(sub.seen)-1].Data.Changes[0]; c.Size != int64(len("azure blob")) || c.ETag == "" {
		t.Errorf("notified change lacks detail: %+v", c)
	}
	// The scan agrees with what the notification committed.
	w.scan(t, "az-src")
	w.drained(t)
	sub.none()

	a.del(t, name)
	a.enqueue(t, egBlobEvent(t, "Microsoft.Storage.BlobDeleted", "DeleteBlob", a.container, name, "", 0,
		"00000000000004420000000000028964"))
	sub.expectBy("notification", change{"deleted", name})
	w.scan(t, "az-src")
	w.drained(t)
	sub.none()
}

// TestAzureCatchUpAfterRestart: what changed in the container while the
// worker was down is published once it is back, and nothing else.
func TestAzureCatchUpAfterRestart(t *testing.T) {
	a := startAzure(t, false)
	for _, k := range []string{"a.png", "b.png", "c.png"} {
		a.put(t, k, "v1 "+k)
	}
	n := testkit.StartNATS(t, t.TempDir(), 0)
	cfg := testConfig(t, n.URL, a.source("az-src"))
	w := start(t, cfg)
	sub := subscribe(t, n.URL, cfg.NATS.Stream, "syncer.changed.az-src")
	sub.expectBy("scan", added("a.png", "b.png", "c.png")...)
	w.scan(t, "az-src")
	w.drained(t)
	w.stop(t)

	// While the worker is down.
	a.put(t, "c.png", "v2 is longer")
	a.del(t, "a.png")
	a.put(t, "b2.png", "new")

	w = start(t, cfg)
	sub.expectBy("scan", change{"added", "b2.png"}, change{"modified", "c.png"}, change{"deleted", "a.png"})
	w.scan(t, "az-src")
	w.drained(t)
	sub.none()
}
