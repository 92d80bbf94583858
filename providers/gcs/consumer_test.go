package gcs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

const (
	project = "test-project"
	topicID = "gcs-events"
	subID   = "syncer"
	bucket  = "photos"
)

// recorder is a notify.Applier that remembers what it committed. fail, when
// set, decides per call whether Apply fails.
type recorder struct {
	mu      sync.Mutex
	events  []notify.Event
	calls   int
	fail    func(call int, evs []notify.Event) error
	block   chan struct{} // when set, Apply waits for it to close
	entered chan struct{} // when set, Apply sends on it first
}

func (r *recorder) Apply(ctx context.Context, evs []notify.Event) error {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls, evs); err != nil {
			return err
		}
	}
	r.events = append(r.events, evs...)
	return nil
}

func (r *recorder) snapshot() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) forKey(key string) []notify.Event {
	var out []notify.Event
	for _, e := range r.snapshot() {
		if e.Key == key {
			out = append(out, e)
		}
	}
	return out
}

// env is a Pub/Sub fake with a topic and subscription, and fake-gcs-server
// publishing the notifications of its buckets to that topic.
type env struct {
	ps      *pstest.Server
	gcs     *fakestorage.Server
	storage *storage.Client
	reg     *prometheus.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	topic := "projects/" + project + "/topics/" + topicID
	ps, _ := newPubSub(t, []string{topic}, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/" + subID, Topic: topic, AckDeadlineSeconds: 10,
	})

	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1",
		// Without PublicHost the fake answers every read with "not found".
		PublicHost: "127.0.0.1",
		Writer:     logw,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(gcs.URL(), "http://"))
	sc, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return &env{ps: ps, gcs: gcs, storage: sc, reg: prometheus.NewRegistry()}
}

// newPubSub starts pstest with topics and subscriptions, points the clients
// of the test at it (PUBSUB_EMULATOR_HOST) and returns it with an admin
// client.
func newPubSub(t *testing.T, topics []string, subs ...*pubsubpb.Subscription) (*pstest.Server, *pubsub.Client) {
	t.Helper()
	ctx := context.Background()
	ps := pstest.NewServer()
	t.Cleanup(func() { ps.Close() })
	// Our consumers and fake-gcs-server's publisher find the fake through
	// the variable, as they would find a real emulator.
	t.Setenv("PUBSUB_EMULATOR_HOST", ps.Addr)
	admin, err := pubsub.NewClient(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	for _, topic := range topics {
		if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range subs {
		if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	return ps, admin
}

// notifyingBucket creates a bucket whose notifications go to the topic.
func (e *env) notifyingBucket(t *testing.T, name, format string) *storage.BucketHandle {
	t.Helper()
	e.gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	b := e.storage.Bucket(name)
	if _, err := b.AddNotification(context.Background(), &storage.Notification{
		TopicProjectID: project, TopicID: topicID, PayloadFormat: format,
	}); err != nil {
		t.Fatalf("add notification: %v", err)
	}
	return b
}

// start runs a consumer of the subscription for bucket until the test ends,
// and fails the test if Run does not return nil then.
func (e *env) start(t *testing.T, app notify.Applier, opts ...ConsumerOption) *Consumer {
	t.Helper()
	src := config.Source{ID: "src1", Provider: "gcs", Bucket: bucket,
		Notifications: config.Notifications{PubSub: &config.PubSub{Project: project, Subscription: subID}}}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts = append([]ConsumerOption{WithNackDelay(0)}, opts...)
	c, err := NewConsumer(context.Background(), notificationsOf(t, src), app, log, e.reg, opts...)
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
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		c.Close()
	})
	return c
}

// count reads the kernel's tally: a delivery outcome (applied,
// apply_failed) or a parser's skip code (overwritten, bad_payload...).
func (c *Consumer) count(outcome string) float64 {
	t := c.Tally()
	switch outcome {
	case outcomeApplied, outcomeApplyFailed:
		return testutil.ToFloat64(t.Deliveries.WithLabelValues(outcome))
	}
	return testutil.ToFloat64(t.Codes.WithLabelValues(outcome))
}

// The kernel's delivery outcomes under the names these tests used.
const (
	outcomeApplied     = notify.DeliveryApplied
	outcomeApplyFailed = notify.DeliveryApplyFailed
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// acked waits until every message published so far has been acked.
func (e *env) allAcked(t *testing.T) {
	t.Helper()
	waitFor(t, "every message acked", func() bool {
		for _, m := range e.ps.Messages() {
			if m.Acks == 0 {
				return false
			}
		}
		return true
	})
}

func putGen(t *testing.T, b *storage.BucketHandle, key, body string) int64 {
	t.Helper()
	w := b.Object(key).NewWriter(context.Background())
	w.ChunkSize = 0 // one request; the fake's resumable uploads are slow
	w.ContentType = "image/png"
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return w.Attrs().Generation
}

func kinds(evs []notify.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s@%s", e.Kind, e.Object.Version))
	}
	return strings.Join(s, " ")
}

// TestObjectLifecycle drives real writes in fake-gcs-server: create,
// overwrite, delete. The overwrite's FINALIZE and DELETE are published
// concurrently by the fake, so they reach the consumer in either order; it
// must yield one Upsert and no Delete.
func TestObjectLifecycle(t *testing.T) {
	for _, format := range []string{storage.JSONPayload, storage.NoPayload} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t)
			b := e.notifyingBucket(t, bucket, format)
			rec := &recorder{}
			c := e.start(t, rec)
			const key = "albums/red flower+1%2F ü.png"

			g1 := putGen(t, b, key, "one")
			waitFor(t, "create", func() bool { return len(rec.forKey(key)) == 1 })

			g2 := putGen(t, b, key, "two!")
			waitFor(t, "overwrite", func() bool {
				return len(rec.forKey(key)) == 2 && c.count(string(ReasonOverwritten)) == 1
			})

			if err := b.Object(key).Delete(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "delete", func() bool { return len(rec.forKey(key)) == 3 })
			e.allAcked(t)

			got := rec.forKey(key)
			want := fmt.Sprintf("upsert@%d upsert@%d delete@%d", g1, g2, g2)
			if kinds(got) != want {
				t.Fatalf("events %s, want %s", kinds(got), want)
			}
			for i, ev := range got {
				if ev.Provider != "gcs" || ev.Bucket != bucket || ev.ID == "" || ev.Sequencer == "" {
					t.Errorf("event %d: %+v", i, ev)
				}
				if ev.Kind == notify.Upsert && format == storage.JSONPayload && ev.Object.Size != int64(3+i) {
					t.Errorf("event %d: size %d", i, ev.Object.Size)
				}
				if ev.Kind == notify.Upsert && format == storage.NoPayload && ev.Complete {
					t.Errorf("event %d: payload NONE must not be complete", i)
				}
			}
			if got[0].Sequencer >= got[1].Sequencer || got[1].Sequencer >= got[2].Sequencer {
				t.Errorf("sequencers not increasing: %q %q %q", got[0].Sequencer, got[1].Sequencer, got[2].Sequencer)
			}
			if n := c.count(outcomeApplied); n != 3 {
				t.Errorf("applied %v messages, want 3", n)
			}
		})
	}
}

// TestOverwriteBothOrders publishes the two halves of an overwrite in each
// order, the second only after the first was acked, so the order of arrival
// is certain.
func TestOverwriteBothOrders(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	c := e.start(t, rec)
	topic := "projects/" + project + "/topics/" + topicID
	attrs := func(typ, gen string, kv ...string) map[string]string {
		a := map[string]string{"eventType": typ, "payloadFormat": "NONE", "bucketId": bucket,
			"objectGeneration": gen, "eventTime": "2026-11-27T10:00:00Z"}
		for i := 0; i+1 < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
		return a
	}
	publishAcked := func(a map[string]string) {
		id := e.ps.Publish(topic, nil, a)
		waitFor(t, "ack of "+a["eventType"], func() bool { return e.ps.Message(id).Acks > 0 })
	}
	fin := attrs("OBJECT_FINALIZE", "200", "objectId", "k1", "overwroteGeneration", "100")
	del := attrs("OBJECT_DELETE", "100", "objectId", "k1", "overwrittenByGeneration", "200")
	publishAcked(fin)
	publishAcked(del)
	fin["objectId"], del["objectId"] = "k2", "k2"
	publishAcked(del)
	publishAcked(fin)

	for _, k := range []string{"k1", "k2"} {
		if got := kinds(rec.forKey(k)); got != "upsert@200" {
			t.Errorf("%s: %s, want one upsert", k, got)
		}
	}
	if n := c.count(string(ReasonOverwritten)); n != 2 {
		t.Errorf("overwritten %v, want 2", n)
	}
}

// TestSkippedMessagesAreAcked sends what the consumer must not apply: a real
// notification from another bucket, the same for an object of a foreign
// bucket published by hand, and malformed messages. Each is acked; the
// malformed ones are counted and never reach the applier.
func TestSkippedMessagesAreAcked(t *testing.T) {
	e := newEnv(t)
	other := e.notifyingBucket(t, "other-bucket", storage.JSONPayload)
	rec := &recorder{}
	c := e.start(t, rec)
	topic := "projects/" + project + "/topics/" + topicID

	putGen(t, other, "x.png", "x")
	good := map[string]string{"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1",
		"bucketId": bucket, "objectId": "k", "objectGeneration": "1"}
	e.ps.Publish(topic, []byte("{garbage"), good)
	e.ps.Publish(topic, []byte("\x00\x01binary"), nil)
	e.ps.Publish(topic, nil, with(good, "eventType", "OBJECT_SPONTANEOUS_COMBUSTION"))
	e.ps.Publish(topic, nil, with(good, "payloadFormat", "NONE", "objectGeneration", "not-a-number"))
	e.ps.Publish(topic, nil, with(good, "payloadFormat", "NONE", "bucketId", "third-bucket"))

	want := map[string]float64{
		string(ReasonBadPayload):       1,
		string(ReasonMissingAttribute): 1,
		string(ReasonUnknownType):      1,
		string(ReasonBadAttribute):     1,
	}
	waitFor(t, "skipped messages counted", func() bool {
		for outcome, n := range want {
			if c.count(outcome) != n {
				return false
			}
		}
		return true
	})
	e.allAcked(t)
	if n := len(e.ps.Messages()); n != 6 {
		t.Errorf("%d messages on the topic, want 6", n)
	}
	// The two of other buckets reach the applier: deciding that no source
	// watches a bucket is the Router's (see the notifytest suite).
	waitFor(t, "foreign events handed on", func() bool { return len(rec.snapshot()) == 2 })
	for _, ev := range rec.snapshot() {
		if ev.Bucket == bucket {
			t.Errorf("applied %+v", ev)
		}
	}
	for _, m := range e.ps.Messages() {
		if m.Deliveries != 1 {
			t.Errorf("message %s delivered %d times", m.ID, m.Deliveries)
		}
	}
}

func TestNewConsumerChecksConfig(t *testing.T) {
	t.Setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
	ps := &PubSub{Project: project, Subscription: subID}
	for name, n := range map[string]Notifications{
		"no pubsub":       {Source: "s", Bucket: bucket},
		"no project":      {Source: "s", Bucket: bucket, PubSub: &PubSub{Subscription: subID}},
		"no subscription": {Source: "s", Bucket: bucket, PubSub: &PubSub{Project: project}},
		"no bucket":       {Source: "s", PubSub: ps},
	} {
		if _, err := NewConsumer(context.Background(), n, &recorder{}, nil, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Two consumers share one registry.
	reg := prometheus.NewRegistry()
	for _, id := range []string{"a", "b"} {
		c, err := NewConsumer(context.Background(), Notifications{Source: id, Bucket: bucket, PubSub: ps}, &recorder{}, nil, reg)
		if err != nil {
			t.Fatalf("consumer %s: %v", id, err)
		}
		c.Close()
	}
}

// notificationsOf is the notification settings the kind decodes of src, as
// the worker gets them.
func notificationsOf(t testing.TB, src config.Source) Notifications {
	t.Helper()
	kinds, err := providers.NewRegistry(Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	src.Provider = Name
	_, c, err := src.Configure(kinds, "sources[0]")
	if err != nil {
		t.Fatalf("configure %s: %v", src.ID, err)
	}
	return c.Notifications.(Notifications)
}
