package azure

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/notify/notifytest"
)

// The Storage Queue passes the kernel's conformance suite on Azurite: the
// poison queue is its dead-letter path (dequeueCount > maxDequeueCount).
func TestQueueConformance(t *testing.T) {
	notifytest.Run(t, queueHarness(nil))
}

// conformanceVT is the visibility timeout of the suite's queues: how long a
// failed message takes to come back.
const conformanceVT = time.Second

func queueHarness(wrap func(notify.Driver) notify.Driver) notifytest.Harness {
	return notifytest.Harness{
		Provider: "azure", Transport: TransportStorageQueue, Redelivery: conformanceVT, MinRedelivery: conformanceVT,
		New: func(t *testing.T) notifytest.Queue { return &conformanceQueue{tq: newTestQueue(t), wrap: wrap} },
	}
}

type conformanceQueue struct {
	tq   *testQueue
	wrap func(notify.Driver) notify.Driver
	sent map[string]string // key and sequencer → message: a duplicate is the same message
}

func (q *conformanceQueue) consumer(t *testing.T, name string, app notify.Applier, reg prometheus.Registerer) notifytest.Runner {
	t.Helper()
	src := q.tq.source(conformanceVT, 2)
	src.Source = notifytest.SourceID
	src.StorageQueue.Queue = name
	opts := []QueueOption{WithPollInterval(10*time.Millisecond, 50*time.Millisecond)}
	if q.wrap != nil {
		opts = append(opts, withDriverWrap(q.wrap))
	}
	c, err := NewQueueConsumer(t.Context(), src, app, nil, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (q *conformanceQueue) Consumer(t *testing.T, app notify.Applier, reg prometheus.Registerer) notifytest.Runner {
	return q.consumer(t, q.tq.name, app, reg)
}

func (q *conformanceQueue) Missing(t *testing.T) (notifytest.Runner, string) {
	name := uniqueName("missing-")
	return q.consumer(t, name, notifytest.NewGate(nil), nil), name
}

func (q *conformanceQueue) Send(t *testing.T, bucket, key string, seq int) {
	t.Helper()
	id := fmt.Sprintf("%s/%s@%d", bucket, key, seq)
	if q.sent == nil {
		q.sent = map[string]string{}
	}
	if _, ok := q.sent[id]; !ok {
		body := blobCreated(bucket, key, key, fmt.Sprintf("0x%X", seq), 1, fmt.Sprintf("%02x", seq))
		q.sent[id] = base64.StdEncoding.EncodeToString([]byte(body))
	}
	q.tq.send(t, q.sent[id])
}

func (q *conformanceQueue) Unsettled(t *testing.T) int    { return int(count(t, q.tq.q)) }
func (q *conformanceQueue) DeadLettered(t *testing.T) int { return int(countIfExists(t, q.tq)) }

// countIfExists counts the poison queue's messages; 0 before it exists.
func countIfExists(t *testing.T, tq *testQueue) int64 {
	if _, err := tq.poison.GetProperties(t.Context(), nil); err != nil {
		return 0
	}
	return count(t, tq.poison)
}

// withDriverWrap wraps the consumer's driver: the meta-test breaks it.
func withDriverWrap(f func(notify.Driver) notify.Driver) QueueOption {
	return func(o *queueOptions) { o.wrap = f }
}
