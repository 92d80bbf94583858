package gcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/internal/retry"
	"github.com/imgly/syncer/notify"
	gcsprovider "github.com/imgly/syncer/providers/gcs"
)

// Outcomes of a message besides the parser's Reasons; label values of the
// in-process messages tally (the exported counts are
// syncer_notifications_total, through Consumer.t).
const (
	outcomeApplied       = "applied"
	outcomeForeignBucket = "foreign_bucket"
	outcomeApplyFailed   = "apply_failed"
)

// Defaults of the consumer options.
const (
	DefaultMaxOutstanding = 100
	DefaultNackDelay      = time.Second
	DefaultShutdownGrace  = 10 * time.Second
)

// Consumer reads the GCS notifications of one source from an existing Pub/Sub
// subscription, hands them to a notify.Applier and acknowledges each message
// only after Apply returned nil. A message Apply fails on is nacked and
// redelivered. Messages that cannot be applied — malformed, of another
// bucket, the skipped half of an overwrite — are logged, counted and acked,
// so they never come back.
type Consumer struct {
	id        string
	bucket    string
	app       notify.Applier
	log       *slog.Logger
	client    *pubsub.Client
	sub       *pubsub.Subscriber
	msgs      *prometheus.CounterVec // unregistered tally per message, for tests
	t         *notify.Transport
	nackDelay time.Duration
	grace     time.Duration
}

// ConsumerOption tunes NewConsumer.
type ConsumerOption func(*consumerSettings)

type consumerSettings struct {
	maxOutstanding int
	nackDelay      time.Duration
	grace          time.Duration
	clientOpts     []option.ClientOption
}

// WithMaxOutstanding bounds how many messages are received but not yet acked
// or nacked, which is also how many Apply calls run at once (default
// DefaultMaxOutstanding).
func WithMaxOutstanding(n int) ConsumerOption {
	return func(s *consumerSettings) {
		if n > 0 {
			s.maxOutstanding = n
		}
	}
}

// WithNackDelay sets how long a message whose Apply failed is held before it
// is nacked (default DefaultNackDelay). Pub/Sub redelivers a nacked message
// at once unless the subscription has a retry policy; the delay keeps a
// failing catalog from turning into a busy loop.
func WithNackDelay(d time.Duration) ConsumerOption {
	return func(s *consumerSettings) {
		if d >= 0 {
			s.nackDelay = d
		}
	}
}

// WithShutdownGrace sets how long Apply calls in flight when Run's context
// ends may still take to commit (default DefaultShutdownGrace). After that
// their context is cancelled and the messages are nacked.
func WithShutdownGrace(d time.Duration) ConsumerOption {
	return func(s *consumerSettings) {
		if d >= 0 {
			s.grace = d
		}
	}
}

// WithPubSubOptions passes extra options to pubsub.NewClient, after those
// derived from the configuration.
func WithPubSubOptions(opts ...option.ClientOption) ConsumerOption {
	return func(s *consumerSettings) { s.clientOpts = append(s.clientOpts, opts...) }
}

// NewConsumer returns a consumer of src.Notifications.PubSub. It
// authenticates like the storage provider (src.GCS.CredentialsFile, else
// Application Default Credentials); PUBSUB_EMULATOR_HOST, when set, points it
// at an emulator. The subscription must exist: Run fails when it does not.
//
// It counts into the shared notification metrics (syncer_notifications_total
// and friends, transport "pubsub") registered with reg unless reg is nil. A
// nil log discards.
func NewConsumer(ctx context.Context, src config.Source, app notify.Applier, log *slog.Logger, reg prometheus.Registerer, opts ...ConsumerOption) (*Consumer, error) {
	ps := src.Notifications.PubSub
	if ps == nil || ps.Project == "" || ps.Subscription == "" {
		return nil, fmt.Errorf("gcs notifications for source %q: notifications.pubsub needs project and subscription", src.ID)
	}
	if src.Bucket == "" {
		return nil, fmt.Errorf("gcs notifications for source %q: no bucket", src.ID)
	}
	if app == nil {
		return nil, fmt.Errorf("gcs notifications for source %q: no applier", src.ID)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := consumerSettings{maxOutstanding: DefaultMaxOutstanding, nackDelay: DefaultNackDelay, grace: DefaultShutdownGrace}
	for _, o := range opts {
		o(&s)
	}
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gcs_messages"}, []string{"source", "outcome"})
	copts, err := gcsprovider.ClientOptions(src.GCS.CredentialsFile, os.Getenv("PUBSUB_EMULATOR_HOST") != "")
	if err != nil {
		return nil, fmt.Errorf("gcs notifications for source %q: %w", src.ID, err)
	}
	if ps.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(ps.Endpoint))
	}
	copts = append(copts, s.clientOpts...)
	client, err := pubsub.NewClient(ctx, ps.Project, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcs notifications for source %q: pubsub client: %w", src.ID, err)
	}
	sub := client.Subscriber(ps.Subscription)
	sub.ReceiveSettings.MaxOutstandingMessages = s.maxOutstanding
	return &Consumer{
		id:        src.ID,
		bucket:    src.Bucket,
		app:       app,
		log:       log.With("source", src.ID, "subscription", sub.String()),
		client:    client,
		sub:       sub,
		msgs:      msgs,
		t:         notify.NewTransport(reg, src.ID, notify.TransportPubSub),
		nackDelay: s.nackDelay,
		grace:     s.grace,
	}, nil
}

// Run receives messages until ctx ends, then waits for the messages in flight
// and returns nil. It returns an error when the subscription cannot be read
// (missing, no permission).
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("gcs notifications: receiving")
	if err := c.sub.Receive(ctx, c.handle); err != nil {
		return fmt.Errorf("gcs notifications for source %q: receive from %s: %w", c.id, c.sub, err)
	}
	c.log.Info("gcs notifications: stopped")
	return nil
}

// LastMessageAt is when the last message was received; zero before the
// first.
func (c *Consumer) LastMessageAt() time.Time { return c.t.LastMessageAt() }

// Close releases the Pub/Sub client. Call it after Run returned.
func (c *Consumer) Close() error { return c.client.Close() }

func (c *Consumer) handle(ctx context.Context, m *pubsub.Message) {
	c.t.Received()
	evs, err := Parse(m.Attributes, m.Data)
	if err != nil {
		var se *SkipError
		if !errors.As(err, &se) { // Parse promises only *SkipError
			se = &SkipError{Reason: ReasonBadPayload, Detail: err.Error()}
		}
		level, outcome := slog.LevelDebug, notify.OutcomeSkippedIgnored
		if se.Malformed() {
			level, outcome = slog.LevelWarn, notify.OutcomeMalformed
		}
		c.t.Count(outcome, 1)
		c.log.Log(ctx, level, "gcs notification skipped",
			"message", m.ID, "reason", string(se.Reason), "detail", se.Detail,
			"eventType", clip(m.Attributes[attrEventType]), "bucket", clip(m.Attributes[attrBucket]),
			"object", clip(m.Attributes[attrObject]))
		c.done(m, string(se.Reason))
		return
	}
	if b := evs[0].Bucket; b != c.bucket {
		c.log.Warn("gcs notification for another bucket skipped; does the subscription belong to this source?",
			"message", m.ID, "bucket", clip(b), "object", clip(evs[0].Key))
		c.t.Count(notify.OutcomeSkippedForeign, len(evs))
		c.done(m, outcomeForeignBucket)
		return
	}
	for i := range evs {
		evs[i].ID = m.ID
	}

	// Let a commit that is under way finish when Run is asked to stop, rather
	// than abandon it half done: Receive waits for this callback anyway.
	actx, cancel := notify.Detach(ctx, c.grace)
	defer cancel()
	actx = c.t.Context(actx)

	if err := c.app.Apply(actx, evs); err != nil {
		c.msgs.WithLabelValues(c.id, outcomeApplyFailed).Inc()
		c.t.Count(notify.OutcomeFailed, len(evs))
		if ctx.Err() == nil {
			c.log.Warn("gcs notification not applied; it will be redelivered",
				"message", m.ID, "object", clip(evs[0].Key), "err", err)
			retry.Sleep(ctx, c.nackDelay)
		}
		m.Nack()
		return
	}
	c.done(m, outcomeApplied)
}

// done counts and acks a message that needs no redelivery.
func (c *Consumer) done(m *pubsub.Message, outcome string) {
	c.msgs.WithLabelValues(c.id, outcome).Inc()
	m.Ack()
}

// clip bounds attacker-sized attribute values in log lines.
func clip(s string) string {
	const limit = 256
	if len(s) <= limit {
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
