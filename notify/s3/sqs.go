package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/providers"
)

// SQS defaults and limits.
const (
	DefaultSQSConcurrency       = 4
	DefaultSQSVisibilityTimeout = 30 * time.Second
	DefaultSQSWaitTime          = 20 * time.Second
	// sqsMaxBatch is the most messages one ReceiveMessage returns.
	sqsMaxBatch = 10
	// sqsMaxWait is the longest long poll SQS allows.
	sqsMaxWait = 20 * time.Second
	// sqsMaxVisibility is the longest visibility timeout SQS allows.
	sqsMaxVisibility = 12 * time.Hour
)

// SQSConsumer reads S3 notifications (raw, SNS-wrapped or EventBridge) from
// one SQS queue and applies them.
//
// Each of Concurrency pollers long-polls for up to 10 messages, parses them,
// applies their events with one Apply call and deletes the messages once
// Apply returned nil. While Apply runs, a heartbeat keeps the batch
// invisible. A message whose Apply fails is left in the queue: it comes
// back after its visibility timeout, and the queue's redrive policy
// dead-letters it after maxReceiveCount attempts. Malformed, ignored and
// foreign-bucket messages are counted, logged and deleted.
type SQSConsumer struct {
	client      *sqs.Client
	queueURL    string
	concurrency int
	visibility  time.Duration
	wait        time.Duration
	// callTimeout bounds each SQS call (beyond a receive's long-poll wait):
	// the source's requestTimeout.
	callTimeout time.Duration
	app         notify.Applier
	p           *processor
}

// SQSOption configures an SQSConsumer.
type SQSOption func(*sqsOptions)

type sqsOptions struct {
	awsOptions []func(*awsconfig.LoadOptions) error
	httpClient aws.HTTPClient
}

// WithAWSOptions adds options to the AWS config loading, e.g. static
// credentials in tests.
func WithAWSOptions(opts ...func(*awsconfig.LoadOptions) error) SQSOption {
	return func(o *sqsOptions) { o.awsOptions = append(o.awsOptions, opts...) }
}

// WithHTTPClient sets the HTTP client the SQS client uses.
func WithHTTPClient(c aws.HTTPClient) SQSOption {
	return func(o *sqsOptions) { o.httpClient = c }
}

// NewSQSConsumer returns a consumer of src.Notifications.SQS. Credentials
// come from the default AWS chain (environment, shared config, web identity
// / IRSA); the region is notifications.sqs.region, else the one in the
// queue URL, else s3.region. It does not contact SQS: a missing queue is
// reported by Run.
func NewSQSConsumer(ctx context.Context, src config.Source, app notify.Applier, log *slog.Logger,
	reg prometheus.Registerer, opts ...SQSOption) (*SQSConsumer, error) {
	q := src.Notifications.SQS
	if q == nil || q.QueueURL == "" {
		return nil, fmt.Errorf("sqs consumer for source %s: notifications.sqs.queueURL is not set", src.ID)
	}
	if app == nil {
		return nil, fmt.Errorf("sqs consumer for source %s: no applier", src.ID)
	}
	var o sqsOptions
	for _, fn := range opts {
		fn(&o)
	}
	region := q.Region
	if region == "" {
		region = regionFromQueueURL(q.QueueURL)
	}
	if region == "" {
		region = src.S3.Region
	}
	load := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if o.httpClient != nil {
		load = append(load, awsconfig.WithHTTPClient(o.httpClient))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, append(load, o.awsOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("sqs consumer for source %s: load AWS config: %w", src.ID, err)
	}
	client := sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if q.Endpoint != "" {
			so.BaseEndpoint = aws.String(q.Endpoint)
		}
	})
	c := &SQSConsumer{
		client:      client,
		queueURL:    q.QueueURL,
		concurrency: q.Concurrency,
		visibility:  q.VisibilityTimeout,
		wait:        q.WaitTime,
		callTimeout: src.RequestTimeout,
		app:         app,
		p:           newProcessor(src, notify.TransportSQS, log, reg, "queue", q.QueueURL),
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultSQSConcurrency
	}
	if c.visibility <= 0 {
		c.visibility = DefaultSQSVisibilityTimeout
	}
	// SQS counts visibility in whole seconds; round up so that a
	// sub-second setting does not become "visible at once".
	c.visibility = min((c.visibility + time.Second - 1).Truncate(time.Second), sqsMaxVisibility)
	if c.wait <= 0 {
		c.wait = DefaultSQSWaitTime
	}
	if c.callTimeout <= 0 {
		c.callTimeout = providers.DefaultRequestTimeout
	}
	c.wait = min(c.wait.Round(time.Second), sqsMaxWait)
	return c, nil
}

// regionFromQueueURL reads the region of an AWS queue URL
// (https://sqs.<region>.amazonaws.com/<account>/<name>); "" otherwise.
func regionFromQueueURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && parts[2] == "amazonaws" {
		return parts[1]
	}
	return ""
}

// Run polls until ctx is cancelled, then finishes the batches in flight and
// returns nil. It returns an error only when the queue does not exist.
// Other receive failures (network, throttling, expired credentials) are
// logged, counted and retried with backoff.
func (c *SQSConsumer) Run(ctx context.Context) error {
	pollCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range c.concurrency {
		wg.Go(func() {
			if err := c.poll(pollCtx); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(pollCtx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// receiveBackoff bounds the wait after a failed receive: 200 ms doubling to
// 30 s, jittered so that pollers (and workers) that failed together do not
// retry together.
var receiveBackoff = retry.Policy{Min: 200 * time.Millisecond, Max: 30 * time.Second}

// poll is one poller: receive a batch, handle it, repeat.
func (c *SQSConsumer) poll(ctx context.Context) error {
	backoff := receiveBackoff.Start()
	for ctx.Err() == nil {
		// A long poll answers within its wait; past that plus the call
		// timeout the connection has stalled, and a new receive is due.
		rctx, cancel := context.WithTimeout(ctx, c.wait+c.callTimeout)
		out, err := c.client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(c.queueURL),
			MaxNumberOfMessages: sqsMaxBatch,
			WaitTimeSeconds:     int32(c.wait / time.Second),
			VisibilityTimeout:   int32(c.visibility / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount,
				types.MessageSystemAttributeNameSentTimestamp,
			},
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var missing *types.QueueDoesNotExist
			if errors.As(err, &missing) {
				return fmt.Errorf("sqs: receive from %s: %w", c.queueURL, err)
			}
			c.p.m.t.Error("receive")
			wait := backoff.Next()
			c.p.log.WarnContext(ctx, "sqs receive failed; retrying", "err", err, "backoff", wait)
			if !retry.Sleep(ctx, wait) {
				return nil
			}
			continue
		}
		backoff.Reset()
		if len(out.Messages) > 0 {
			c.handleBatch(ctx, out.Messages)
		}
	}
	return nil
}

// item is one received message on its way through a batch.
type item struct {
	msg    types.Message
	events []notify.Event
	// ack says the message may be deleted: it was applied, or had
	// nothing to apply, or was refused.
	ack     bool
	outcome string
}

func (it *item) attrs() []any {
	return []any{
		"message_id", aws.ToString(it.msg.MessageId),
		"receive_count", it.msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)],
	}
}

// handleBatch parses, applies and deletes one received batch. Once received,
// a batch is finished even if ctx is cancelled meanwhile (shutdown), within
// one visibility timeout: after that the messages are back in the queue
// anyway.
func (c *SQSConsumer) handleBatch(ctx context.Context, msgs []types.Message) {
	work, cancel := notify.Detach(ctx, c.visibility)
	defer cancel()

	hbCtx, stopHeartbeat := context.WithCancel(work)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		c.heartbeat(hbCtx, msgs)
	}()

	items := make([]item, len(msgs))
	for i, m := range msgs {
		it := &items[i]
		it.msg = m
		events, err := c.p.prepare(work, []byte(aws.ToString(m.Body)), it.attrs()...)
		switch {
		case err != nil:
			// Refused, counted and logged by prepare: delete it, a
			// malformed message never gets better.
			it.ack = true
		case len(events) == 0:
			it.ack, it.outcome = true, outSkipped
		default:
			it.events = events
		}
	}
	c.apply(work, items)

	stopHeartbeat()
	<-hbDone
	c.delete(work, items)
	for i := range items {
		if items[i].outcome != "" {
			c.p.m.messages.WithLabelValues(items[i].outcome).Inc()
		}
	}
}

// apply applies the batch's messages (up to ten in one catalog commit, see
// notify.ApplyEach) and records each one's outcome.
func (c *SQSConsumer) apply(ctx context.Context, items []item) {
	var with []int
	var msgs [][]notify.Event
	for i := range items {
		if len(items[i].events) > 0 {
			with = append(with, i)
			msgs = append(msgs, items[i].events)
		}
	}
	if len(with) == 0 {
		return
	}
	for j, err := range notify.ApplyEach(c.p.m.t.Context(ctx), c.app, msgs) {
		it := &items[with[j]]
		if err != nil {
			c.failed(ctx, it, err)
			continue
		}
		it.ack, it.outcome = true, outApplied
	}
}

// failed leaves a message for redelivery.
func (c *SQSConsumer) failed(ctx context.Context, it *item, err error) {
	it.ack, it.outcome = false, outApplyFailed
	c.p.m.t.Count(notify.OutcomeFailed, len(it.events))
	ev := it.events[0]
	c.p.log.WarnContext(ctx, "s3 notification not applied; it will be redelivered after its visibility timeout",
		append(it.attrs(), "err", err, "events", len(it.events), "bucket", ev.Bucket, "key", ev.Key,
			"visibility_timeout", c.visibility)...)
}

// delete removes the acknowledged messages with one DeleteMessageBatch. A
// failed delete only means the message is delivered again, which the
// applier treats as a duplicate.
func (c *SQSConsumer) delete(ctx context.Context, items []item) {
	var entries []types.DeleteMessageBatchRequestEntry
	for i := range items {
		if items[i].ack {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{
				Id:            aws.String(strconv.Itoa(i)),
				ReceiptHandle: items[i].msg.ReceiptHandle,
			})
		}
	}
	if len(entries) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	out, err := c.client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{
		QueueUrl: aws.String(c.queueURL),
		Entries:  entries,
	})
	if err != nil {
		for range entries {
			c.p.m.t.Error("delete")
		}
		c.p.log.WarnContext(ctx, "sqs delete failed; the messages will be delivered again", "err", err,
			"messages", len(entries))
		return
	}
	for _, f := range out.Failed {
		c.p.m.t.Error("delete")
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		attrs := []any{"code", aws.ToString(f.Code), "err", aws.ToString(f.Message)}
		if i >= 0 && i < len(items) {
			attrs = append(attrs, items[i].attrs()...)
		}
		c.p.log.WarnContext(ctx, "sqs delete failed; the message will be delivered again", attrs...)
	}
}

// heartbeat extends the batch's visibility every third of the timeout
// until ctx is cancelled, so that slow work (stats, a busy catalog) does
// not make the messages visible to another poller meanwhile.
func (c *SQSConsumer) heartbeat(ctx context.Context, msgs []types.Message) {
	t := time.NewTicker(c.visibility / 3)
	defer t.Stop()
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(i)),
			ReceiptHandle:     m.ReceiptHandle,
			VisibilityTimeout: int32(c.visibility / time.Second),
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vctx, cancel := context.WithTimeout(ctx, c.callTimeout)
		out, err := c.client.ChangeMessageVisibilityBatch(vctx, &sqs.ChangeMessageVisibilityBatchInput{
			QueueUrl: aws.String(c.queueURL),
			Entries:  entries,
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.p.m.t.Error("heartbeat")
			c.p.log.WarnContext(ctx, "sqs visibility extension failed", "err", err, "messages", len(entries))
			continue
		}
		for _, f := range out.Failed {
			c.p.m.t.Error("heartbeat")
			c.p.log.DebugContext(ctx, "sqs visibility extension failed for a message",
				"id", aws.ToString(f.Id), "code", aws.ToString(f.Code), "err", aws.ToString(f.Message))
		}
	}
}

// LastMessageAt is when the last message was received; zero before the
// first.
func (c *SQSConsumer) LastMessageAt() time.Time { return c.p.LastMessageAt() }
