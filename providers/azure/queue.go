package azure

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// Queue consumer defaults.
const (
	DefaultVisibilityTimeout = 60 * time.Second
	DefaultMaxDequeueCount   = 5
	PoisonQueueSuffix        = "-poison"
	// MaxBatch is the most messages one Get Messages call returns.
	MaxBatch = 32
	// DefaultPollMin is the wait after a non-empty dequeue: bursts are
	// read at once.
	DefaultPollMin = 100 * time.Millisecond
	// DefaultPollMax is the longest wait between dequeues of an idle
	// queue: waits are drawn from [250 ms, 500 ms], so a notification to a
	// queue idle for any time waits about 190 ms for its dequeue on
	// average (at most 500 ms), for about 86,400 s / 0.375 s = 230,400
	// dequeues a day per idle queue and consumer.
	DefaultPollMax = 500 * time.Millisecond
)

// QueueConsumer reads Event Grid events from an Azure Storage Queue and
// applies them: the notification kernel (notify.Consumer) driving a Storage
// Queue.
//
// A message is deleted only after Apply returned nil for its events. While
// Apply works, the batch's visibility timeout is renewed every half timeout,
// so slow work is not redelivered to a second consumer meanwhile. A message
// whose Apply fails is left alone and reappears when its visibility timeout
// lapses; one dequeued more than MaxDequeueCount times is copied to the
// poison queue (created on first use, messages never expire there) and
// deleted. Messages that cannot be read at all, or that hold only ignored
// event types, are logged, counted and deleted.
type QueueConsumer struct{ *notify.Consumer }

type queueOptions struct {
	batch            int
	pollMin, pollMax time.Duration
	workLimit        time.Duration
	wrap             func(notify.Driver) notify.Driver // tests: a deliberately broken driver
}

// QueueOption tunes a QueueConsumer.
type QueueOption func(*queueOptions)

// WithBatchSize sets how many messages one dequeue asks for (1..32;
// default 32).
func WithBatchSize(n int) QueueOption { return func(o *queueOptions) { o.batch = n } }

// WithPollInterval sets how long an idle consumer waits before asking again:
// min after a non-empty batch, doubling (jittered, see notify.IdlePoll) to
// max while the queue stays empty. Storage Queues have no long polling, so
// max bounds the latency of a notification to an idle consumer and sets the
// idle request rate. Defaults DefaultPollMin and DefaultPollMax.
func WithPollInterval(min, max time.Duration) QueueOption {
	return func(o *queueOptions) { o.pollMin, o.pollMax = min, max }
}

// WithWorkLimit bounds how long one batch may take to apply before the
// consumer gives up on it (its messages then reappear). Default 5 minutes.
func WithWorkLimit(d time.Duration) QueueOption { return func(o *queueOptions) { o.workLimit = d } }

// NewQueueConsumer returns the consumer of n.StorageQueue.
//
// Authentication: the queue's own connection string; else its account URL
// (a SAS in it authorises by itself) with the source's account key, SAS
// token or, without either, DefaultAzureCredential; else the source's
// connection string (its QueueEndpoint, or the account's default endpoint);
// else the source's account URL with "blob" replaced by "queue" in the host.
// No request is made here.
func NewQueueConsumer(ctx context.Context, n Notifications, app notify.Applier, log *slog.Logger,
	reg prometheus.Registerer, opts ...QueueOption) (*QueueConsumer, error) {
	sq := n.StorageQueue
	if sq == nil || sq.Queue == "" {
		return nil, fmt.Errorf("azure source %q: no notifications.storageQueue.queue", n.Source)
	}
	if app == nil {
		return nil, fmt.Errorf("azure source %q: no applier", n.Source)
	}
	o := queueOptions{batch: MaxBatch, pollMin: DefaultPollMin, pollMax: DefaultPollMax, workLimit: 5 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.batch < 1 || o.batch > MaxBatch {
		return nil, fmt.Errorf("azure source %q: queue batch size %d out of range 1..%d", n.Source, o.batch, MaxBatch)
	}
	if o.pollMin <= 0 || o.pollMax < o.pollMin || o.workLimit <= 0 {
		return nil, fmt.Errorf("azure source %q: invalid queue poll interval or work limit", n.Source)
	}
	poisonName, vt, maxDQ, err := queueSettings(sq)
	if err != nil {
		return nil, fmt.Errorf("azure source %q: notifications.storageQueue: %w", n.Source, err)
	}
	svc, err := queueService(n.Account, sq)
	if err != nil {
		return nil, fmt.Errorf("azure source %q: storage queue: %w", n.Source, err)
	}
	d := &queueDriver{
		queue:       svc.NewQueueClient(sq.Queue),
		poison:      svc.NewQueueClient(poisonName),
		queueName:   sq.Queue,
		vt:          vt,
		callTimeout: cmp.Or(n.RequestTimeout, providers.DefaultRequestTimeout),
	}
	var driver notify.Driver = d
	if o.wrap != nil {
		driver = o.wrap(d)
	}
	in := notify.NewIntake(reg, log, n.Source, TransportStorageQueue, "queue", sq.Queue)
	in.Log.InfoContext(ctx, "azure queue consumer configured", "visibility_timeout", vt,
		"max_dequeue_count", maxDQ, "poison_queue", poisonName)
	kc, err := notify.NewConsumer(notify.ConsumerConfig{
		Driver: driver,
		Parse:  parseQueueMessage,
		App:    app,
		Intake: in,
		Batch:  o.batch,
		// Every half timeout: one renewal may fail before the batch
		// becomes visible to another consumer.
		Heartbeat: vt / 2,
		// A batch in hand is finished after shutdown too, within the
		// work limit: its messages would only come back otherwise.
		Grace:          o.workLimit,
		WorkLimit:      o.workLimit,
		ReceiveBackoff: dequeueBackoff,
		// Storage Queues have no long poll.
		Idle:          notify.IdlePoll{Min: o.pollMin, Max: o.pollMax},
		MaxDeliveries: int64(maxDQ),
	})
	if err != nil {
		return nil, fmt.Errorf("azure source %q: %w", n.Source, err)
	}
	return &QueueConsumer{kc}, nil
}

// queueSettings checks the queue's settings and fills in the defaults: the
// poison queue's name, the visibility timeout and the max dequeue count.
func queueSettings(sq *StorageQueue) (poison string, vt time.Duration, maxDQ int, err error) {
	poison = sq.PoisonQueue
	if poison == "" {
		poison = sq.Queue + PoisonQueueSuffix
	}
	for _, q := range []string{sq.Queue, poison} {
		if err := checkQueueName(q); err != nil {
			return "", 0, 0, err
		}
	}
	if poison == sq.Queue {
		return "", 0, 0, errors.New("poisonQueue must differ from the queue")
	}
	vt = sq.VisibilityTimeout
	if vt <= 0 {
		vt = DefaultVisibilityTimeout
	}
	// The service counts whole seconds, at least one, at most seven days.
	vt = max(vt.Round(time.Second), time.Second)
	if vt > 7*24*time.Hour {
		return "", 0, 0, fmt.Errorf("visibilityTimeout %v exceeds 7 days", vt)
	}
	maxDQ = sq.MaxDequeueCount
	if maxDQ <= 0 {
		maxDQ = DefaultMaxDequeueCount
	}
	return poison, vt, maxDQ, nil
}

// parseQueueMessage decodes a queue message (base64 or plain JSON) and
// parses the Event Grid events in it.
func parseQueueMessage(m *notify.Message) (notify.Parsed, error) {
	body, err := DecodeQueueMessage(string(m.Body))
	if err != nil {
		return notify.Parsed{}, err
	}
	return parse(body)
}

// checkQueueName applies the service's naming rules, so that a bad name
// fails at start rather than on every poll.
func checkQueueName(n string) error {
	if len(n) < 3 || len(n) > 63 || n[0] == '-' || n[len(n)-1] == '-' || strings.Contains(n, "--") {
		return fmt.Errorf("queue name %q: 3 to 63 characters, no leading, trailing or double hyphen", n)
	}
	for _, c := range n {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("queue name %q: only lower-case letters, digits and hyphens", n)
		}
	}
	return nil
}

// queueService builds the queue service client; see NewQueueConsumer.
// Errors never quote settings that may carry secrets.
func queueService(az Config, sq *StorageQueue) (*azqueue.ServiceClient, error) {
	if sq.ConnectionString != "" {
		c, err := azqueue.NewServiceClientFromConnectionString(sq.ConnectionString, nil)
		if err != nil {
			return nil, fmt.Errorf("connectionString: %w", err)
		}
		return c, nil
	}
	accountURL := sq.AccountURL
	if accountURL == "" {
		if az.ConnectionString != "" {
			c, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
			if err != nil {
				return nil, fmt.Errorf("source azure.connectionString: %w", err)
			}
			return c, nil
		}
		derived, err := queueURLFromBlobURL(az.AccountURL)
		if err != nil {
			return nil, err
		}
		accountURL = derived
	}
	// An account SAS may cover the queue service too (ss=bq); a SAS in the
	// queue's own URL wins.
	u, err := ServiceURL(accountURL, "")
	if err != nil {
		return nil, err
	}
	if u.RawQuery == "" {
		u.RawQuery = strings.TrimPrefix(strings.TrimSpace(az.SASToken), "?")
	}
	kind, err := chooseAuth(az, u)
	if err != nil {
		return nil, err
	}
	switch kind {
	case authSharedKey:
		cred, err := azqueue.NewSharedKeyCredential(az.AccountName, az.AccountKey)
		if err != nil {
			return nil, errBadAccountKey
		}
		return azqueue.NewServiceClientWithSharedKeyCredential(u.String(), cred, nil)
	case authSAS:
		return azqueue.NewServiceClientWithNoCredential(u.String(), nil)
	default:
		cred, err := defaultCredential()
		if err != nil {
			return nil, err
		}
		return azqueue.NewServiceClient(u.String(), cred, nil)
	}
}

// queueURLFromBlobURL turns https://acct.blob.core.windows.net into
// https://acct.queue.core.windows.net.
func queueURLFromBlobURL(blobURL string) (string, error) {
	const need = "notifications.storageQueue.accountURL is required: it cannot be derived from azure.accountURL"
	if blobURL == "" {
		return "", errors.New(need)
	}
	u, err := url.Parse(blobURL)
	if err != nil {
		return "", errors.New(need)
	}
	acct, rest, ok := strings.Cut(u.Host, ".")
	if !ok || !strings.HasPrefix(rest, "blob.") || acct == "" {
		return "", errors.New(need)
	}
	u.Host = acct + ".queue." + strings.TrimPrefix(rest, "blob.")
	return u.String(), nil
}

func queueMissing(err error) bool {
	var re *ResponseError
	if errors.As(redact(err), &re) {
		return re.Code == string(queueerror.QueueNotFound) || (re.Code == "" && re.StatusCode == http.StatusNotFound)
	}
	return false
}

// fatalQueueError reports errors retrying will not cure: the queue is
// missing or access is denied.
func fatalQueueError(err error) bool {
	var re *ResponseError
	if errors.As(err, &re) {
		return queueMissing(err) || re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized
	}
	var afe *azidentity.AuthenticationFailedError
	return errors.As(err, &afe)
}

// goneError reports that a pop receipt no longer works: the message was
// deleted or dequeued again by someone else.
func goneError(err error) bool {
	var re *ResponseError
	if errors.As(err, &re) {
		return re.Code == string(queueerror.MessageNotFound) || re.Code == string(queueerror.PopReceiptMismatch) ||
			re.StatusCode == http.StatusNotFound
	}
	return false
}

// dequeueBackoff bounds the wait after a failed dequeue: 1 s doubling to
// 30 s.
var dequeueBackoff = retry.Policy{Min: time.Second, Max: 30 * time.Second}
