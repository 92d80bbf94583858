package azure

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/notify"
)

// Azurite's built-in account and its published key; not a secret.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

func azuriteQueue(t testing.TB) string {
	t.Helper()
	u := os.Getenv("SYNCER_TEST_AZURITE_QUEUE")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SYNCER_TEST_AZURITE_QUEUE is not set: the test command must start Azurite in CI")
		}
		t.Skip("SYNCER_TEST_AZURITE_QUEUE not set (e.g. http://127.0.0.1:10001/devstoreaccount1): start Azurite to run")
	}
	return strings.TrimRight(u, "/")
}

func uniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// testQueue is a fresh queue (and the name of its poison queue), both
// deleted when the test ends.
type testQueue struct {
	endpoint, name string
	q, poison      *azqueue.QueueClient
}

func newTestQueue(t testing.TB) *testQueue {
	t.Helper()
	endpoint := azuriteQueue(t)
	cred, err := azqueue.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := azqueue.NewServiceClientWithSharedKeyCredential(endpoint, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName("syncer-")
	tq := &testQueue{endpoint: endpoint, name: name, q: svc.NewQueueClient(name), poison: svc.NewQueueClient(name + PoisonQueueSuffix)}
	if _, err := tq.q.Create(context.Background(), nil); err != nil {
		t.Fatalf("create queue: %v", err)
	}
	t.Cleanup(func() {
		_, _ = tq.q.Delete(context.Background(), nil)
		_, _ = tq.poison.Delete(context.Background(), nil)
	})
	return tq
}

func (tq *testQueue) send(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if _, err := tq.q.EnqueueMessage(context.Background(), s, nil); err != nil {
			t.Fatalf("enqueue: %v", err)
		}
	}
}

// count is the number of messages in q, visible or not.
func count(t *testing.T, q *azqueue.QueueClient) int64 {
	t.Helper()
	p, err := q.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatalf("queue properties: %v", err)
	}
	if p.ApproximateMessagesCount == nil {
		return 0
	}
	return *p.ApproximateMessagesCount
}

func (tq *testQueue) source(vt time.Duration, maxDequeue int) Notifications {
	return Notifications{
		Source:  "az",
		Account: Config{AccountURL: "https://unused.blob.core.windows.net", AccountName: devAccount, AccountKey: devKey},
		StorageQueue: &StorageQueue{
			Queue: tq.name, AccountURL: tq.endpoint, VisibilityTimeout: vt, MaxDequeueCount: maxDequeue,
		},
	}
}

// start runs a consumer until the test ends and checks that Run then
// returns nil.
func start(t *testing.T, src Notifications, app notify.Applier, reg prometheus.Registerer) (cancel func(), done <-chan error) {
	t.Helper()
	c, err := NewQueueConsumer(context.Background(), src, app, nil, reg, WithPollInterval(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelFn := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancelFn()
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop, ch
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestQueueBothSchemasBothEncodings(t *testing.T) {
	t.Parallel()
	tq := newTestQueue(t)
	tq.send(t, egCreated, b64(egDeleted), ceCreated, b64(ceRenamed), egDeleted /* duplicate */)
	rec := newRecorder()
	start(t, tq.source(30*time.Second, 5), rec, nil)

	rec.waitFor(t, 10*time.Second, "all events", func(_ int, evs []notify.Event) bool {
		up, del := keysOf(evs, notify.Upsert), keysOf(evs, notify.Delete)
		return up["photos/red flower+1.jpg"] == 1 && up["a b.png"] == 1 && up["new/name.png"] == 1 &&
			del["photos/old.png"] == 2 && del["old/name.png"] == 1
	})
	eventually(t, 5*time.Second, "queue drained", func() bool { return count(t, tq.q) == 0 })
	_, evs := rec.snapshot()
	checkEvents(t, evs)
	for _, e := range evs {
		if e.Bucket != "assets" {
			t.Errorf("bucket %q", e.Bucket)
		}
	}
}

func TestQueueMalformedAndIgnoredAreDeleted(t *testing.T) {
	t.Parallel()
	tq := newTestQueue(t)
	tq.send(t, "garbage", b64("hello"), `{"foo": 1}`, egTier, b64(egValidation))
	rec := newRecorder()
	reg := prometheus.NewRegistry()
	start(t, tq.source(30*time.Second, 5), rec, reg)

	eventually(t, 10*time.Second, "queue drained", func() bool { return count(t, tq.q) == 0 })
	if calls, _ := rec.snapshot(); calls != 0 {
		t.Errorf("Apply called %d times for nothing to apply", calls)
	}
	if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeMalformed); got != 3 {
		t.Errorf("malformed messages counted %v, want 3", got)
	}
	// A tier change and a validation event: one ignored event each.
	if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeSkippedIgnored); got != 2 {
		t.Errorf("ignored events counted %v, want 2", got)
	}
}

func TestQueuePoison(t *testing.T) {
	t.Parallel()
	tq := newTestQueue(t)
	text := b64(egCreated)
	tq.send(t, text)
	rec := newRecorder()
	rec.fail = func(int, []notify.Event) error { return errors.New("always failing") }
	reg := prometheus.NewRegistry()
	start(t, tq.source(time.Second, 1), rec, reg)

	// Dequeued once (applied, failed); the second dequeue exceeds the limit.
	eventually(t, 10*time.Second, "message in the poison queue", func() bool {
		p, err := tq.poison.PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: ptr(int32(32))})
		return err == nil && len(p.Messages) == 1 && *p.Messages[0].MessageText == text
	})
	eventually(t, 5*time.Second, "queue drained", func() bool { return count(t, tq.q) == 0 })
	if calls, _ := rec.snapshot(); calls != 1 {
		t.Errorf("Apply called %d times, want 1 (the second delivery is past the limit)", calls)
	}
	if got := counter(t, reg, "syncer_notifications_total", notify.OutcomeDeadLettered); got != 1 {
		t.Errorf("poisoned counted %v, want 1", got)
	}
}

// Work that outlasts the visibility timeout keeps the message hidden: no
// second delivery while Apply runs.
func TestQueueVisibilityExtended(t *testing.T) {
	t.Parallel()
	tq := newTestQueue(t)
	tq.send(t, ceCreated)
	rec := newRecorder()
	rec.hold()
	start(t, tq.source(time.Second, 5), rec, nil)
	t.Cleanup(rec.release)

	select {
	case <-rec.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Apply not called")
	}
	// Watch for three visibility timeouts: the message must stay hidden.
	until := time.Now().Add(3 * time.Second)
	for time.Now().Before(until) {
		p, err := tq.q.PeekMessages(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != 0 {
			t.Fatal("message became visible while Apply was still working")
		}
		select {
		case <-rec.entered:
			t.Fatal("message delivered a second time while the first Apply was still working")
		case <-time.After(100 * time.Millisecond):
		}
	}
	rec.release()
	eventually(t, 5*time.Second, "queue drained", func() bool { return count(t, tq.q) == 0 })
	if calls, _ := rec.snapshot(); calls != 1 {
		t.Errorf("Apply called %d times, want 1", calls)
	}
}

// Without settings of its own the queue uses the source's connection string.
func TestQueueAuthFromSourceConnectionString(t *testing.T) {
	t.Parallel()
	tq := newTestQueue(t)
	tq.send(t, egDeleted)
	src := Notifications{
		Source: "az",
		Account: Config{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + devAccount +
			";AccountKey=" + devKey + ";QueueEndpoint=" + tq.endpoint + ";"},
		StorageQueue: &StorageQueue{Queue: tq.name},
	}
	rec := newRecorder()
	start(t, src, rec, nil)
	rec.waitFor(t, 10*time.Second, "delete event", func(_ int, evs []notify.Event) bool {
		return keysOf(evs, notify.Delete)["photos/old.png"] == 1
	})
}

func TestNewQueueConsumerRejects(t *testing.T) {
	base := func(sq *StorageQueue) Notifications {
		return Notifications{Source: "az",
			Account:      Config{AccountURL: "http://127.0.0.1:10000/devstoreaccount1"},
			StorageQueue: sq}
	}
	for name, src := range map[string]Notifications{
		"no queue":        base(nil),
		"bad name":        base(&StorageQueue{Queue: "Bad_Name", AccountURL: "https://a.queue.core.windows.net"}),
		"long poison":     base(&StorageQueue{Queue: strings.Repeat("q", 60), AccountURL: "https://a.queue.core.windows.net"}),
		"same poison":     base(&StorageQueue{Queue: "qq1", PoisonQueue: "qq1", AccountURL: "https://a.queue.core.windows.net"}),
		"no derivable":    base(&StorageQueue{Queue: "qq1"}), // an emulator URL has no ".blob." host
		"bad conn string": base(&StorageQueue{Queue: "qq1", ConnectionString: "AccountKey=SECRET"}),
	} {
		_, err := NewQueueConsumer(context.Background(), src, newRecorder(), nil, nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error leaks a secret: %v", name, err)
		}
	}
}

func TestQueueURLFromBlobURL(t *testing.T) {
	got, err := queueURLFromBlobURL("https://acct.blob.core.windows.net/")
	if err != nil || got != "https://acct.queue.core.windows.net/" {
		t.Errorf("got %q, %v", got, err)
	}
	got, err = queueURLFromBlobURL("https://acct.blob.core.chinacloudapi.cn")
	if err != nil || got != "https://acct.queue.core.chinacloudapi.cn" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := queueURLFromBlobURL("http://127.0.0.1:10000/devstoreaccount1"); err == nil {
		t.Error("derived a queue URL from an emulator URL")
	}
}

func ptr[T any](v T) *T { return &v }
