package s3

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/notify/notifytest"
)

// The SQS tests talk to fauxqs (SQS and SNS protocol server on Node 22),
// started by scripts/test.sh and .ci/run, found through
// SYNCER_TEST_SQS_ENDPOINT. fauxqs does not emit S3 notifications, so the
// tests put provider-format bodies on the queue the way S3 (directly, or
// through an SNS topic, raw or wrapped) and EventBridge deliver them.

func sqsEndpoint(t testing.TB) string {
	t.Helper()
	ep := os.Getenv("SYNCER_TEST_SQS_ENDPOINT")
	if ep == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SYNCER_TEST_SQS_ENDPOINT is not set: CI must start fauxqs (see scripts/test.sh)")
		}
		t.Skip("SYNCER_TEST_SQS_ENDPOINT is not set: start fauxqs (testenv) to run the SQS tests")
	}
	return ep
}

// awsTestOptions are fauxqs's fixed credentials and region.
func awsTestOptions() []func(*awsconfig.LoadOptions) error {
	return []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	}
}

func awsTestConfig(t testing.TB) aws.Config {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(), awsTestOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// env is one test's queue with its clients.
type env struct {
	endpoint string
	sqs      *sqs.Client
	sns      *sns.Client
	queueURL string
	queueARN string

	mu    sync.Mutex
	dated map[string]string // body as built → body as sent
}

var nameRe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// uniqueName gives each test run its own queue and topic names, so that a
// fauxqs shared between runs and helpers never mixes them.
func uniqueName(t testing.TB, suffix string) string {
	n := nameRe.ReplaceAllString(t.Name(), "-")
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return fmt.Sprintf("%s-%s-%d", n, suffix, time.Now().UnixNano())
}

func newEnv(t testing.TB, visibility time.Duration) *env {
	t.Helper()
	ep := sqsEndpoint(t)
	cfg := awsTestConfig(t)
	e := &env{
		endpoint: ep,
		sqs:      sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(ep) }),
		sns:      sns.NewFromConfig(cfg, func(o *sns.Options) { o.BaseEndpoint = aws.String(ep) }),
	}
	ctx := t.Context()
	out, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(uniqueName(t, "q")),
		Attributes: map[string]string{
			string(types.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibility / time.Second)),
		},
	})
	if err != nil {
		t.Fatalf("create queue at %s: %v", ep, err)
	}
	e.queueURL = aws.ToString(out.QueueUrl)
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       out.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.queueARN = attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	t.Cleanup(func() {
		_, _ = e.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	return e
}

// sentNow dates a body built with the builders' fixed event time now, as a
// store sending it would: the applier tells stale events by their time. The
// same body sent again is a duplicate delivery and keeps its date.
func (e *env) sentNow(body string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if dated, ok := e.dated[body]; ok {
		return dated
	}
	now := time.Now().UTC()
	dated := strings.ReplaceAll(body, "2026-11-27T10:11:12.345Z", now.Format("2006-01-02T15:04:05.000Z"))
	dated = strings.ReplaceAll(dated, "2026-11-27T10:11:12Z", now.Format(time.RFC3339))
	if e.dated == nil {
		e.dated = map[string]string{}
	}
	e.dated[body] = dated
	return dated
}

func (e *env) send(t *testing.T, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := e.sqs.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(e.queueURL), MessageBody: aws.String(e.sentNow(b))}); err != nil {
			t.Fatal(err)
		}
	}
}

// topic creates an SNS topic delivering to the queue, raw or wrapped in
// the SNS envelope.
func (e *env) topic(t *testing.T, raw bool) string {
	t.Helper()
	ctx := t.Context()
	name := "wrapped"
	if raw {
		name = "raw"
	}
	out, err := e.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(uniqueName(t, name))})
	if err != nil {
		t.Fatal(err)
	}
	in := &sns.SubscribeInput{TopicArn: out.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(e.queueARN), ReturnSubscriptionArn: true}
	if raw {
		in.Attributes = map[string]string{"RawMessageDelivery": "true"}
	}
	if _, err := e.sns.Subscribe(ctx, in); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.TopicArn)
}

// publish sends a body through SNS the way S3 does.
func (e *env) publish(t *testing.T, topicARN, message string) {
	t.Helper()
	if _, err := e.sns.Publish(t.Context(), &sns.PublishInput{
		TopicArn: aws.String(topicARN), Message: aws.String(e.sentNow(message)), Subject: aws.String("Amazon S3 Notification"),
	}); err != nil {
		t.Fatal(err)
	}
}

// inQueue is the number of messages still in the queue, visible or not.
func (e *env) inQueue(t *testing.T) int {
	t.Helper()
	out, err := e.sqs.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(e.queueURL),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range out.Attributes {
		i, _ := strconv.Atoi(v)
		n += i
	}
	return n
}

// eventually waits for cond, checking it every few milliseconds, and fails
// the test at the deadline.
var eventually = notifytest.Eventually

// recorder is a notify.Applier that records what it is given. fail, when
// set, decides per call whether Apply fails.
type recorder struct {
	mu      sync.Mutex
	changed chan struct{}
	applied []notify.Event // events of calls that returned nil
	calls   [][]notify.Event
	fail    func(call int, events []notify.Event) error
	block   func(ctx context.Context, events []notify.Event) // runs before fail
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) Apply(ctx context.Context, events []notify.Event) error {
	if r.block != nil {
		r.block(ctx, events)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, slices.Clone(events))
	var err error
	if r.fail != nil {
		err = r.fail(len(r.calls), events)
	}
	if err == nil {
		r.applied = append(r.applied, events...)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	return err
}

// waitFor blocks until cond holds for the applied events.
func (r *recorder) waitFor(t *testing.T, timeout time.Duration, what string, cond func(applied []notify.Event) bool) []notify.Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		applied, ch := slices.Clone(r.applied), r.changed
		r.mu.Unlock()
		if cond(applied) {
			return applied
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s; applied: %+v", timeout, what, applied)
		}
	}
}

func (r *recorder) snapshot() (applied []notify.Event, calls [][]notify.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied), slices.Clone(r.calls)
}

func byKey(events []notify.Event) map[string][]notify.Event {
	m := map[string][]notify.Event{}
	for _, ev := range events {
		m[ev.Key] = append(m[ev.Key], ev)
	}
	return m
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startConsumer runs a consumer for bucket "media" on e's queue until the
// test ends; the cleanup asserts Run returned nil.
func startConsumer(t *testing.T, e *env, app notify.Applier, visibility time.Duration, reg prometheus.Registerer) *SQSConsumer {
	t.Helper()
	src := config.Source{ID: "lib", Provider: "s3", Bucket: "media", Notifications: config.Notifications{SQS: &config.SQS{
		QueueURL: e.queueURL, Endpoint: e.endpoint, Concurrency: 2, VisibilityTimeout: visibility, WaitTime: 2 * time.Second,
	}}}
	c, err := NewSQSConsumer(t.Context(), notificationsOf(t, src), app, testLogger(t), reg, WithAWSOptions(awsTestOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return c
}

func counter(c *prometheus.CounterVec, label string) int {
	return int(testutil.ToFloat64(c.WithLabelValues(label)))
}

// TestSQSFormats delivers every format the way its sender would and checks
// what the applier receives, what is counted, and that the queue drains.
func TestSQSFormats(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	wrapped, raw := e.topic(t, false), e.topic(t, true)
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	c := startConsumer(t, e, rec, 5*time.Second, reg)

	// S3 -> SQS.
	e.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "photos/red+flower.jpg", Size: 10, ETag: "aa", Sequencer: "0055AED6DCD90281E5"})))
	// S3 -> SNS -> SQS, wrapped and raw.
	e.publish(t, wrapped, recordsBody(awsRecord("ObjectRemoved:DeleteMarkerCreated", "media", obj{Key: "photos/old+file.jpg", VersionID: "v2", Sequencer: "0055AED6DCD90281E6"})))
	e.publish(t, raw, recordsBody(awsRecord("ObjectCreated:CompleteMultipartUpload", "media", obj{Key: "raw%2Fc%2B%2B.bin", Size: 5 << 20, ETag: "bb-2", Sequencer: "0055AED6DCD90281E7"})))
	// EventBridge -> SQS.
	e.send(t,
		eventBridgeBody("Object Created", "media", ebObj{Key: "eb/a+b.png", Size: 3, ETag: "cc", Sequencer: "617f08299329d189"}, "PutObject", ""),
		eventBridgeBody("Object Deleted", "media", ebObj{Key: "eb/gone.png", VersionID: "v9", Sequencer: "617f08299329d18a"}, "DeleteObject", "Permanently Deleted"),
	)
	// Skipped: test events (raw and through SNS), another bucket, an
	// untracked event type.
	e.send(t, testEventBody("media"))
	e.publish(t, wrapped, testEventBody("media"))
	e.send(t, recordsBody(awsRecord("ObjectCreated:Put", "other-bucket", obj{Key: "x", Size: 1, Sequencer: "01"})))
	e.send(t, recordsBody(awsRecord("ObjectTagging:Put", "media", obj{Key: "photos/red+flower.jpg", Sequencer: "02"})))
	// Malformed.
	e.send(t, "not json", `{"Records":"x"}`)

	// Six events: the other bucket's too, which only the Router (not this
	// recorder) would count as foreign and drop.
	all := rec.waitFor(t, 20*time.Second, "six events", func(ev []notify.Event) bool { return len(ev) >= 6 })
	m := tallyOf(c.Tally())
	eventually(t, 20*time.Second, "all messages counted", func() bool {
		return counter(m.messages, outApplied) == 6 && counter(m.messages, outSkipped) == 3 && counter(m.messages, outMalformed) == 2
	})
	var applied []notify.Event
	for _, ev := range all {
		if ev.Bucket == "media" {
			applied = append(applied, ev)
		} else if ev.Bucket != "other-bucket" || ev.Key != "x" {
			t.Errorf("unexpected event %+v", ev)
		}
	}
	eventually(t, 10*time.Second, "the queue to drain", func() bool { return e.inQueue(t) == 0 })

	got := byKey(applied)
	type want struct {
		kind     notify.Kind
		complete bool
		size     int64
	}
	wants := map[string]want{
		"photos/red flower.jpg": {notify.Upsert, true, 10},
		"photos/old file.jpg":   {notify.Delete, true, 0},
		"raw/c++.bin":           {notify.Upsert, true, 5 << 20},
		"eb/a b.png":            {notify.Upsert, false, 3},
		"eb/gone.png":           {notify.Delete, false, 0},
	}
	if len(applied) != len(wants) {
		t.Fatalf("applied %d events, want %d: %+v", len(applied), len(wants), applied)
	}
	for key, w := range wants {
		evs := got[key]
		if len(evs) != 1 {
			t.Errorf("%q: %d events", key, len(evs))
			continue
		}
		ev := evs[0]
		if ev.Kind != w.kind || ev.Complete != w.complete || ev.Object.Size != w.size || ev.Bucket != "media" || ev.Provider != "s3" || ev.Sequencer == "" {
			t.Errorf("%q: %+v", key, ev)
		}
	}
	for label, n := range map[string]int{recEvent: 6, recTest: 2, recIgnored: 1, recMalformed: 0} {
		if got := counter(m.records, label); got != n {
			t.Errorf("records{%s} = %d, want %d", label, got, n)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "syncer_notifications_total"); err != nil || n == 0 {
		t.Errorf("metrics not registered: %d %v", n, err)
	}
}

// TestSQSDuplicates: S3 delivers at least once; both copies reach the
// applier (which makes the second a no-op by its sequencer) and both are
// deleted.
func TestSQSDuplicates(t *testing.T) {
	e := newEnv(t, 5*time.Second)
	rec := newRecorder()
	c := startConsumer(t, e, rec, 5*time.Second, nil)
	body := recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "dup.png", Size: 1, Sequencer: "0A"}))
	e.send(t, body, body)
	applied := rec.waitFor(t, 20*time.Second, "both copies", func(ev []notify.Event) bool { return len(ev) >= 2 })
	if applied[0] != applied[1] {
		t.Fatalf("copies differ: %+v", applied)
	}
	eventually(t, 10*time.Second, "both deleted", func() bool { return counter(tallyOf(c.Tally()).messages, outApplied) == 2 && e.inQueue(t) == 0 })
}

// TestSQSHeartbeat: an Apply slower than the visibility timeout does not
// let the message be delivered to another poller meanwhile.
func TestSQSHeartbeat(t *testing.T) {
	const visibility = time.Second
	e := newEnv(t, visibility)
	rec := newRecorder()
	rec.block = func(ctx context.Context, _ []notify.Event) {
		// Slow work (a throttled stat, a busy catalog), not a sync point.
		select {
		case <-time.After(3 * visibility):
		case <-ctx.Done():
		}
	}
	c := startConsumer(t, e, rec, visibility, nil)
	e.send(t, recordsBody(awsRecord("ObjectCreated:Put", "media", obj{Key: "slow.png", Size: 1, Sequencer: "0A"})))
	rec.waitFor(t, 20*time.Second, "the slow apply", func(ev []notify.Event) bool { return len(ev) == 1 })
	eventually(t, 10*time.Second, "the queue to drain", func() bool { return counter(tallyOf(c.Tally()).messages, outApplied) == 1 && e.inQueue(t) == 0 })
	if _, calls := rec.snapshot(); len(calls) != 1 {
		t.Fatalf("message delivered %d times during a slow apply", len(calls))
	}
}

func TestNewSQSConsumerConfig(t *testing.T) {
	ctx := t.Context()
	opts := WithAWSOptions(awsTestOptions()...)
	if _, err := NewSQSConsumer(ctx, notificationsOf(t, config.Source{ID: "x", Bucket: "b"}), newRecorder(), nil, nil, opts); err == nil {
		t.Error("no sqs config accepted")
	}
	src := config.Source{ID: "x", Bucket: "b", S3: config.S3{Region: "eu-central-1"}, Notifications: config.Notifications{SQS: &config.SQS{
		QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/q", VisibilityTimeout: 1500 * time.Millisecond, WaitTime: time.Minute,
	}}}
	c, err := NewSQSConsumer(ctx, notificationsOf(t, src), newRecorder(), nil, nil, WithAWSOptions(awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("a", "b", ""))))
	if err != nil {
		t.Fatal(err)
	}
	if c.concurrency != DefaultSQSConcurrency || c.visibility != 2*time.Second || c.wait != 20*time.Second {
		t.Errorf("defaults: %d %v %v", c.concurrency, c.visibility, c.wait)
	}
	if r := c.client.Options().Region; r != "eu-west-1" {
		t.Errorf("region %q, want the queue URL's", r)
	}
	if regionFromQueueURL("http://sqs.us-east-1.localhost:4566/000000000000/q") != "" {
		t.Error("a local queue URL has no AWS region")
	}
}
