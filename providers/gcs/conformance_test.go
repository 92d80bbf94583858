package gcs

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/notify/notifytest"
)

// Pub/Sub passes the kernel's conformance suite on pstest. A failed message
// is nacked (after the nack delay) and redelivered; the dead-letter path is
// the subscription's dead-letter topic, which Pub/Sub applies itself after
// its max delivery attempts (without one, a poison message is redelivered
// for as long as the subscription's retention keeps it).
func TestPubSubConformance(t *testing.T) {
	notifytest.Run(t, notifytest.Harness{
		Provider: "gcs", Transport: TransportPubSub, Redelivery: time.Second, MinRedelivery: 100 * time.Millisecond,
		New: newConformanceSub,
	})
}

const (
	confTopic = "projects/" + project + "/topics/conformance"
	confDLQ   = "projects/" + project + "/topics/conformance-dlq"
	confSub   = "conformance"
)

type conformanceSub struct {
	ps   *pstest.Server
	dlq  *pubsub.Client // pulls the dead-letter topic's subscription
	dead int            // dead-lettered messages pulled so far
	now  string         // the event time of every message: a duplicate is the same message
}

func newConformanceSub(t *testing.T) notifytest.Queue {
	t.Helper()
	ps, admin := newPubSub(t, []string{confTopic, confDLQ},
		&pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/" + confSub, Topic: confTopic, AckDeadlineSeconds: 10,
			DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{DeadLetterTopic: confDLQ, MaxDeliveryAttempts: 2}},
		&pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/" + confSub + "-dlq", Topic: confDLQ, AckDeadlineSeconds: 10})
	return &conformanceSub{ps: ps, dlq: admin, now: time.Now().UTC().Format(time.RFC3339Nano)}
}

func (q *conformanceSub) consumer(t *testing.T, sub string, app notify.Applier, reg prometheus.Registerer) notifytest.Runner {
	t.Helper()
	src := config.Source{ID: notifytest.SourceID, Provider: "gcs", Bucket: notifytest.Bucket,
		Notifications: config.Notifications{PubSub: &config.PubSub{Project: project, Subscription: sub}}}
	c, err := NewConsumer(context.Background(), notificationsOf(t, src), app, nil, reg, WithNackDelay(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (q *conformanceSub) Consumer(t *testing.T, app notify.Applier, reg prometheus.Registerer) notifytest.Runner {
	return q.consumer(t, confSub, app, reg)
}

func (q *conformanceSub) Missing(t *testing.T) (notifytest.Runner, string) {
	return q.consumer(t, "missing-sub", notifytest.NewGate(nil), nil), "missing-sub"
}

// Send publishes what GCS publishes for a finalized object with a
// JSON_API_V1 payload; seq is the generation.
func (q *conformanceSub) Send(t *testing.T, bucket, key string, seq int) {
	gen := strconv.Itoa(seq)
	payload := fmt.Sprintf(`{"name":%q,"bucket":%q,"generation":%q,"metageneration":"1","size":"1","etag":"e%d","updated":%q}`,
		key, bucket, gen, seq, q.now)
	q.ps.Publish(confTopic, []byte(payload), map[string]string{
		"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1", "bucketId": bucket, "objectId": key,
		"objectGeneration": gen, "eventTime": q.now,
	})
}

// Unsettled counts the subscription's messages neither acked nor
// dead-lettered (pstest does not count its own ack of a message it moves to
// the dead-letter topic).
func (q *conformanceSub) Unsettled(t *testing.T) int {
	n := 0
	for _, m := range q.ps.Messages() {
		if m.Acks == 0 && m.Topic == confTopic {
			n++
		}
	}
	// A message dead-lettered twice (at least once, like any delivery)
	// still settled only one.
	return max(n-q.DeadLettered(t), 0)
}

// DeadLettered counts the messages that reached the dead-letter topic's
// subscription.
func (q *conformanceSub) DeadLettered(t *testing.T) int {
	req := &pubsubpb.PullRequest{Subscription: "projects/" + project + "/subscriptions/" + confSub + "-dlq", MaxMessages: 10}
	//lint:ignore SA1019 without it pstest's Pull waits for a message
	req.ReturnImmediately = true
	resp, err := q.dlq.SubscriptionAdminClient.Pull(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range resp.ReceivedMessages {
		ids = append(ids, m.AckId)
	}
	if len(ids) > 0 {
		if err := q.dlq.SubscriptionAdminClient.Acknowledge(t.Context(), &pubsubpb.AcknowledgeRequest{
			Subscription: "projects/" + project + "/subscriptions/" + confSub + "-dlq", AckIds: ids}); err != nil {
			t.Fatal(err)
		}
	}
	q.dead += len(ids)
	return q.dead
}
