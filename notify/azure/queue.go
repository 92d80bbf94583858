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
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
	azprov "github.com/imgly/syncer/providers/azure"
)

// Queue consumer defaults.
const (
	DefaultVisibilityTimeout = 60 * time.Second
	DefaultMaxDequeueCount   = 5
	PoisonQueueSuffix        = "-poison"
	// MaxBatch is the most messages one Get Messages call returns.
	MaxBatch = 32
)

// QueueConsumer reads Event Grid events from an Azure Storage Queue and
// applies them.
//
// A message is deleted only after Apply returned nil for its events. While
// Apply works, the batch's visibility timeout is renewed every half timeout,
// so slow work is not redelivered to a second consumer meanwhile. A message
// whose Apply fails is left alone and reappears when its visibility timeout
// lapses; one dequeued more than MaxDequeueCount times is copied to the
// poison queue (created on first use, messages never expire there) and
// deleted. Messages that cannot be read at all, or that hold only ignored
// event types, are logged, counted and deleted.
type QueueConsumer struct {
	p          *processor
	app        notify.Applier
	queue      *azqueue.QueueClient
	poison     *azqueue.QueueClient
	queueName  string
	poisonName string
	vt         time.Duration
	maxDequeue int64
	batch      int32
	pollMin    time.Duration
	pollMax    time.Duration
	workLimit  time.Duration
	// callTimeout bounds each queue call: the source's requestTimeout. A
	// stalled connection then fails one call instead of the consumer.
	callTimeout time.Duration
}

type queueOptions struct {
	batch            int
	pollMin, pollMax time.Duration
	workLimit        time.Duration
}

// QueueOption tunes a QueueConsumer.
type QueueOption func(*queueOptions)

// WithBatchSize sets how many messages one dequeue asks for (1..32;
// default 32).
func WithBatchSize(n int) QueueOption { return func(o *queueOptions) { o.batch = n } }

// WithPollInterval sets how long an idle consumer waits before asking again:
// min after a non-empty batch, doubling to max while the queue stays empty.
// Storage Queues have no long polling, so max bounds the latency of a
// notification to an idle consumer. Defaults 100 ms and 1 s: at most about
// 90k requests a day per idle queue.
func WithPollInterval(min, max time.Duration) QueueOption {
	return func(o *queueOptions) { o.pollMin, o.pollMax = min, max }
}

// WithWorkLimit bounds how long one batch may take to apply before the
// consumer gives up on it (its messages then reappear). Default 5 minutes.
func WithWorkLimit(d time.Duration) QueueOption { return func(o *queueOptions) { o.workLimit = d } }

// NewQueueConsumer returns the consumer of src.Notifications.StorageQueue.
//
// Authentication: the queue's own connection string; else its account URL
// (a SAS in it authorises by itself) with the source's account key, SAS
// token or, without either, DefaultAzureCredential; else the source's
// connection string (its QueueEndpoint, or the account's default endpoint);
// else the source's account URL with "blob" replaced by "queue" in the host.
// No request is made here.
func NewQueueConsumer(ctx context.Context, src config.Source, app notify.Applier, log *slog.Logger,
	reg prometheus.Registerer, opts ...QueueOption) (*QueueConsumer, error) {
	sq := src.Notifications.StorageQueue
	if sq == nil || sq.Queue == "" {
		return nil, fmt.Errorf("azure source %q: no notifications.storageQueue.queue", src.ID)
	}
	if app == nil {
		return nil, fmt.Errorf("azure source %q: no applier", src.ID)
	}
	o := queueOptions{batch: MaxBatch, pollMin: 100 * time.Millisecond, pollMax: time.Second, workLimit: 5 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.batch < 1 || o.batch > MaxBatch {
		return nil, fmt.Errorf("azure source %q: queue batch size %d out of range 1..%d", src.ID, o.batch, MaxBatch)
	}
	if o.pollMin <= 0 || o.pollMax < o.pollMin || o.workLimit <= 0 {
		return nil, fmt.Errorf("azure source %q: invalid queue poll interval or work limit", src.ID)
	}
	poisonName := sq.PoisonQueue
	if poisonName == "" {
		poisonName = sq.Queue + PoisonQueueSuffix
	}
	for _, q := range []string{sq.Queue, poisonName} {
		if err := checkQueueName(q); err != nil {
			return nil, fmt.Errorf("azure source %q: notifications.storageQueue: %w", src.ID, err)
		}
	}
	if poisonName == sq.Queue {
		return nil, fmt.Errorf("azure source %q: notifications.storageQueue.poisonQueue must differ from the queue", src.ID)
	}
	vt := sq.VisibilityTimeout
	if vt <= 0 {
		vt = DefaultVisibilityTimeout
	}
	// The service counts whole seconds, at least one, at most seven days.
	vt = max(vt.Round(time.Second), time.Second)
	if vt > 7*24*time.Hour {
		return nil, fmt.Errorf("azure source %q: notifications.storageQueue.visibilityTimeout %v exceeds 7 days", src.ID, vt)
	}
	maxDQ := sq.MaxDequeueCount
	if maxDQ <= 0 {
		maxDQ = DefaultMaxDequeueCount
	}
	svc, err := queueService(src, sq)
	if err != nil {
		return nil, fmt.Errorf("azure source %q: storage queue: %w", src.ID, err)
	}
	return &QueueConsumer{
		p:           newProcessor(src, notify.TransportStorageQueue, log, reg, "queue", sq.Queue),
		app:         app,
		queue:       svc.NewQueueClient(sq.Queue),
		poison:      svc.NewQueueClient(poisonName),
		queueName:   sq.Queue,
		poisonName:  poisonName,
		vt:          vt,
		maxDequeue:  int64(maxDQ),
		batch:       int32(o.batch),
		pollMin:     o.pollMin,
		pollMax:     o.pollMax,
		workLimit:   o.workLimit,
		callTimeout: cmp.Or(src.RequestTimeout, providers.DefaultRequestTimeout),
	}, nil
}

// call bounds one queue call by callTimeout.
func (c *QueueConsumer) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.callTimeout)
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
func queueService(src config.Source, sq *config.StorageQueue) (*azqueue.ServiceClient, error) {
	if sq.ConnectionString != "" {
		c, err := azqueue.NewServiceClientFromConnectionString(sq.ConnectionString, nil)
		if err != nil {
			return nil, fmt.Errorf("connectionString: %w", err)
		}
		return c, nil
	}
	az := src.Azure
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
	u, err := azprov.ServiceURL(accountURL, "")
	if err != nil {
		return nil, err
	}
	switch {
	case az.AccountKey != "":
		if az.AccountName == "" {
			return nil, errors.New("azure.accountName is required with azure.accountKey")
		}
		cred, err := azqueue.NewSharedKeyCredential(az.AccountName, az.AccountKey)
		if err != nil {
			return nil, errors.New("azure.accountKey is not valid base64")
		}
		u.RawQuery = ""
		return azqueue.NewServiceClientWithSharedKeyCredential(u.String(), cred, nil)
	case u.RawQuery != "":
		return azqueue.NewServiceClientWithNoCredential(u.String(), nil)
	case az.SASToken != "":
		// An account SAS may cover the queue service too (ss=bq).
		u.RawQuery = strings.TrimPrefix(strings.TrimSpace(az.SASToken), "?")
		return azqueue.NewServiceClientWithNoCredential(u.String(), nil)
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("azure default credential: %w", err)
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

// Run dequeues and applies until ctx is cancelled, then returns nil once the
// batch in hand is finished. It fails when the queue is missing or access is
// denied; other errors are logged and retried with backoff.
func (c *QueueConsumer) Run(ctx context.Context) error {
	c.p.log.InfoContext(ctx, "azure queue consumer started", "visibility_timeout", c.vt,
		"max_dequeue_count", c.maxDequeue, "poison_queue", c.poisonName)
	vtSec := int32(c.vt / time.Second)
	// Both waits are jittered so that consumers polling one queue spread out.
	idle := retry.Policy{Min: c.pollMin, Max: c.pollMax}.Start()
	failures := dequeueBackoff.Start()
	for {
		if ctx.Err() != nil {
			return nil
		}
		dctx, cancel := c.call(ctx)
		resp, err := c.queue.DequeueMessages(dctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &c.batch, VisibilityTimeout: &vtSec})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = azprov.Redact(err)
			c.p.m.t.Error("dequeue")
			if fatalQueueError(err) {
				return fmt.Errorf("azure queue %s: dequeue: %w", c.queueName, err)
			}
			wait := failures.Next()
			c.p.log.WarnContext(ctx, "azure queue dequeue failed; retrying", "err", err, "backoff", wait)
			if !retry.Sleep(ctx, wait) {
				return nil
			}
			continue
		}
		failures.Reset()
		if len(resp.Messages) == 0 {
			if !idle.Wait(ctx) {
				return nil
			}
			continue
		}
		idle.Reset()
		c.handle(ctx, resp.Messages)
	}
}

// inflight is one dequeued message on its way to deletion.
type inflight struct {
	id, receipt, text string
	dequeues          int64
	events            []notify.Event
	applied           bool
	lost              bool // another consumer took it over: stop renewing
	attrs             []any
}

// handle works through one batch. Its context survives the cancellation of
// Run's so that a batch in hand is finished, not abandoned half-applied.
func (c *QueueConsumer) handle(ctx context.Context, msgs []*azqueue.DequeuedMessage) {
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.workLimit)
	defer cancel()
	var pending, done []*inflight // to apply; to delete as they are
	for _, m := range msgs {
		if m == nil || m.MessageID == nil || m.PopReceipt == nil {
			continue
		}
		im := &inflight{id: *m.MessageID, receipt: *m.PopReceipt}
		if m.MessageText != nil {
			im.text = *m.MessageText
		}
		if m.DequeueCount != nil {
			im.dequeues = *m.DequeueCount
		}
		im.attrs = []any{"message_id", im.id, "dequeue_count", im.dequeues}
		if im.dequeues > c.maxDequeue {
			c.toPoison(work, im)
			continue
		}
		body, err := DecodeQueueMessage(im.text)
		if err != nil {
			c.p.refused(work, outMalformed, err, []byte(im.text), im.attrs...)
			done = append(done, im)
			continue
		}
		events, err := c.p.prepare(work, body, im.attrs...)
		if err != nil {
			done = append(done, im)
			continue
		}
		if len(events) == 0 {
			c.p.m.messages.WithLabelValues(outSkipped).Inc()
			done = append(done, im)
			continue
		}
		im.events = events
		pending = append(pending, im)
	}
	c.deleteAll(work, done)
	if len(pending) == 0 {
		return
	}
	stop := c.keepHidden(work, pending)
	c.apply(work, pending)
	stop()
	applied := pending[:0]
	for _, im := range pending {
		if im.applied {
			applied = append(applied, im)
		}
	}
	c.deleteAll(work, applied)
}

// deleteAll deletes ims from the queue. Storage Queues delete one message
// per request: in parallel, so a batch of 32 costs about one round trip to
// the service, not 32.
func (c *QueueConsumer) deleteAll(ctx context.Context, ims []*inflight) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, im := range ims {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.delete(ctx, im)
		}()
	}
	wg.Wait()
}

// apply applies the batch (see notify.ApplyEach) and records each message's
// outcome.
func (c *QueueConsumer) apply(ctx context.Context, pending []*inflight) {
	msgs := make([][]notify.Event, len(pending))
	for i, im := range pending {
		msgs[i] = im.events
	}
	for i, err := range notify.ApplyEach(c.p.m.t.Context(ctx), c.app, msgs) {
		if err != nil {
			c.applyFailed(ctx, pending[i], err)
			continue
		}
		pending[i].applied = true
		c.p.m.messages.WithLabelValues(outApplied).Inc()
	}
}

func (c *QueueConsumer) applyFailed(ctx context.Context, im *inflight, err error) {
	c.p.m.messages.WithLabelValues(outApplyFailed).Inc()
	c.p.m.t.Count(notify.OutcomeFailed, len(im.events))
	e := im.events[0]
	c.p.log.WarnContext(ctx, "azure queue message not applied; it will be redelivered",
		append(im.attrs, "err", err, "events", len(im.events), "container", e.Bucket, "key", e.Key)...)
}

// keepHidden renews the visibility timeout of the batch every half timeout
// until the returned function is called (which waits for it to stop, so
// that the pop receipts it renewed are safe to read).
func (c *QueueConsumer) keepHidden(ctx context.Context, pending []*inflight) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	vtSec := int32(c.vt / time.Second)
	go func() {
		defer close(done)
		t := time.NewTicker(c.vt / 2)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, im := range pending {
				if im.lost {
					continue
				}
				uctx, cancel := c.call(ctx)
				resp, err := c.queue.UpdateMessage(uctx, im.id, im.receipt, im.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: &vtSec})
				cancel()
				if err != nil {
					err = azprov.Redact(err)
					c.p.m.t.Error("update")
					if goneError(err) {
						im.lost = true
					}
					c.p.log.WarnContext(ctx, "azure queue visibility not extended; the message may be redelivered", append(im.attrs, "err", err)...)
					continue
				}
				if resp.PopReceipt != nil {
					im.receipt = *resp.PopReceipt
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

func (c *QueueConsumer) delete(ctx context.Context, im *inflight) {
	dctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.queue.DeleteMessage(dctx, im.id, im.receipt, nil)
	if err == nil {
		return
	}
	err = azprov.Redact(err)
	c.p.m.t.Error("delete")
	level := slog.LevelWarn
	if goneError(err) {
		// Its visibility lapsed and another consumer has it now; it
		// will be applied again, which is harmless.
		level = slog.LevelInfo
	}
	c.p.log.Log(ctx, level, "azure queue message not deleted; it may be delivered again", append(im.attrs, "err", err)...)
}

// toPoison copies a message that keeps failing to the poison queue and
// deletes it. When the copy fails the message stays, to be tried again.
func (c *QueueConsumer) toPoison(ctx context.Context, im *inflight) {
	ttl := int32(-1) // never expires: someone has to look at it
	enqueue := func() error {
		ectx, cancel := c.call(ctx)
		_, err := c.poison.EnqueueMessage(ectx, im.text, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl})
		cancel()
		return err
	}
	err := enqueue()
	if err != nil && queueMissing(err) {
		if _, cerr := c.poison.Create(ctx, nil); cerr == nil || queueerror.HasCode(cerr, queueerror.QueueAlreadyExists) {
			err = enqueue()
		}
	}
	if err != nil {
		c.p.m.t.Error("poison")
		c.p.log.WarnContext(ctx, "azure queue message not moved to the poison queue; it stays",
			append(im.attrs, "err", azprov.Redact(err), "poison_queue", c.poisonName)...)
		return
	}
	c.p.m.messages.WithLabelValues(outPoisoned).Inc()
	c.p.m.t.Count(notify.OutcomeDeadLettered, max(len(im.events), 1))
	c.p.log.WarnContext(ctx, "azure queue message moved to the poison queue after too many deliveries",
		append(im.attrs, "poison_queue", c.poisonName, "max_dequeue_count", c.maxDequeue)...)
	c.delete(ctx, im)
}

func queueMissing(err error) bool {
	var re *azprov.ResponseError
	if errors.As(azprov.Redact(err), &re) {
		return re.Code == string(queueerror.QueueNotFound) || (re.Code == "" && re.StatusCode == http.StatusNotFound)
	}
	return false
}

// fatalQueueError reports errors retrying will not cure: the queue is
// missing or access is denied.
func fatalQueueError(err error) bool {
	var re *azprov.ResponseError
	if errors.As(err, &re) {
		return queueMissing(err) || re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized
	}
	var afe *azidentity.AuthenticationFailedError
	return errors.As(err, &afe)
}

// goneError reports that a pop receipt no longer works: the message was
// deleted or dequeued again by someone else.
func goneError(err error) bool {
	var re *azprov.ResponseError
	if errors.As(err, &re) {
		return re.Code == string(queueerror.MessageNotFound) || re.Code == string(queueerror.PopReceiptMismatch) ||
			re.StatusCode == http.StatusNotFound
	}
	return false
}

// dequeueBackoff bounds the wait after a failed dequeue: 1 s doubling to
// 30 s.
var dequeueBackoff = retry.Policy{Min: time.Second, Max: 30 * time.Second}

// LastMessageAt is when the last message was received; zero before the
// first.
func (c *QueueConsumer) LastMessageAt() time.Time { return c.p.LastMessageAt() }
