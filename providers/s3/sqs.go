package s3

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

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
// one SQS queue and applies them: the notification kernel (notify.Consumer)
// driving SQS.
//
// Each of Concurrency loops long-polls for up to 10 messages, parses them,
// applies their events with one Apply call and deletes the messages once
// Apply returned nil. While Apply runs, a heartbeat keeps the batch
// invisible. A message whose Apply fails is left in the queue: it comes
// back after its visibility timeout, and the queue's redrive policy
// dead-letters it after maxReceiveCount attempts. Malformed and ignored
// messages are counted, logged and deleted; events of buckets no source
// watches are counted and acknowledged by the Router.
type SQSConsumer struct {
	*notify.Consumer
	client           *sqs.Client
	concurrency      int
	visibility, wait time.Duration
}

// NewSQSConsumer returns a consumer of n.SQS. Credentials
// come from the default AWS chain (environment, shared config, web identity
// / IRSA); the region is notifications.sqs.region, else the one in the
// queue URL, else s3.region. It does not contact SQS: a missing queue is
// reported by Run.
func NewSQSConsumer(ctx context.Context, n Notifications, app notify.Applier, log *slog.Logger,
	reg prometheus.Registerer, opts ...Option) (*SQSConsumer, error) {
	q := n.SQS
	if q == nil || q.QueueURL == "" {
		return nil, fmt.Errorf("sqs consumer for source %s: notifications.sqs.queueURL is not set", n.Source)
	}
	if app == nil {
		return nil, fmt.Errorf("sqs consumer for source %s: no applier", n.Source)
	}
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	client, err := n.sqsClient(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("sqs consumer for source %s: %w", n.Source, err)
	}
	d := &sqsDriver{client: client, queueURL: q.QueueURL, visibility: q.VisibilityTimeout, wait: q.WaitTime,
		callTimeout: n.RequestTimeout}
	if d.visibility <= 0 {
		d.visibility = DefaultSQSVisibilityTimeout
	}
	// SQS counts visibility in whole seconds; round up so that a
	// sub-second setting does not become "visible at once".
	d.visibility = min((d.visibility + time.Second - 1).Truncate(time.Second), sqsMaxVisibility)
	if d.wait <= 0 {
		d.wait = DefaultSQSWaitTime
	}
	d.wait = min(d.wait.Round(time.Second), sqsMaxWait)
	if d.callTimeout <= 0 {
		d.callTimeout = providers.DefaultRequestTimeout
	}
	concurrency := q.Concurrency
	if concurrency <= 0 {
		concurrency = DefaultSQSConcurrency
	}
	kc, err := notify.NewConsumer(notify.ConsumerConfig{
		Driver:      d,
		Parse:       func(m *notify.Message) (notify.Parsed, error) { return parse(m.Body) },
		App:         app,
		Intake:      notify.NewIntake(reg, log, n.Source, TransportSQS, "queue", q.QueueURL),
		Concurrency: concurrency,
		Batch:       sqsMaxBatch,
		// Every third of the timeout: two extensions may fail before
		// the batch becomes visible to another poller.
		Heartbeat: d.visibility / 3,
		// A batch in hand is finished within one visibility timeout:
		// after that its messages are back in the queue anyway.
		Grace:          d.visibility,
		ReceiveBackoff: receiveBackoff,
		FailedHint:     fmt.Sprintf("it will be redelivered after its visibility timeout (%v)", d.visibility),
	})
	if err != nil {
		return nil, fmt.Errorf("sqs consumer for source %s: %w", n.Source, err)
	}
	return &SQSConsumer{Consumer: kc, client: client, concurrency: concurrency, visibility: d.visibility, wait: d.wait}, nil
}

// sqsClient is the SQS client of n.SQS, for the consumer and its probe. The
// region is notifications.sqs.region, else the one in the queue URL, else
// s3.region.
func (n Notifications) sqsClient(ctx context.Context, o options) (*sqs.Client, error) {
	q := n.SQS
	region := q.Region
	if region == "" {
		region = regionFromQueueURL(q.QueueURL)
	}
	if region == "" {
		region = n.Region
	}
	cfg, err := loadAWSConfig(ctx, region, o)
	if err != nil {
		return nil, err
	}
	return sqs.NewFromConfig(cfg, func(so *sqs.Options) {
		if q.Endpoint != "" {
			so.BaseEndpoint = aws.String(q.Endpoint)
		}
	}), nil
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

// receiveBackoff bounds the wait after a failed receive: 200 ms doubling to
// 30 s, jittered so that pollers (and workers) that failed together do not
// retry together.
var receiveBackoff = retry.Policy{Min: 200 * time.Millisecond, Max: 30 * time.Second}
