package gcs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	"github.com/imgly/syncer/notify"
)

// Defaults of the consumer options.
const (
	DefaultMaxOutstanding = 100
	DefaultNackDelay      = time.Second
	DefaultShutdownGrace  = 10 * time.Second
)

// Consumer reads the GCS notifications of one source from an existing Pub/Sub
// subscription, hands them to a notify.Applier and acknowledges each message
// only after Apply returned nil: the notification kernel (notify.Consumer)
// driving Pub/Sub's streaming pull. A message Apply fails on is nacked and
// redelivered (a dead-letter topic on the subscription, if any, takes it after
// its max delivery attempts). Messages that cannot be applied — malformed, the
// skipped half of an overwrite — are logged, counted and acked, so they never
// come back; events of buckets no source watches are counted and acked by the
// Router.
type Consumer struct {
	*notify.Consumer
	client *pubsub.Client
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

// NewConsumer returns a consumer of n.PubSub. It
// authenticates like the storage provider (n.CredentialsFile, else
// Application Default Credentials); PUBSUB_EMULATOR_HOST, when set, points it
// at an emulator. The subscription must exist: Run fails when it does not.
//
// It counts into the shared notification metrics (syncer_notifications_total
// and friends, transport "pubsub") registered with reg unless reg is nil. A
// nil log discards.
func NewConsumer(ctx context.Context, n Notifications, app notify.Applier, log *slog.Logger, reg prometheus.Registerer, opts ...ConsumerOption) (*Consumer, error) {
	ps := n.PubSub
	if ps == nil || ps.Project == "" || ps.Subscription == "" {
		return nil, fmt.Errorf("gcs notifications for source %q: notifications.pubsub needs project and subscription", n.Source)
	}
	if n.Bucket == "" {
		return nil, fmt.Errorf("gcs notifications for source %q: no bucket", n.Source)
	}
	if app == nil {
		return nil, fmt.Errorf("gcs notifications for source %q: no applier", n.Source)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := consumerSettings{maxOutstanding: DefaultMaxOutstanding, nackDelay: DefaultNackDelay, grace: DefaultShutdownGrace}
	for _, o := range opts {
		o(&s)
	}
	copts, err := ClientOptions(n.CredentialsFile, os.Getenv("PUBSUB_EMULATOR_HOST") != "")
	if err != nil {
		return nil, fmt.Errorf("gcs notifications for source %q: %w", n.Source, err)
	}
	if ps.Endpoint != "" {
		copts = append(copts, option.WithEndpoint(ps.Endpoint))
	}
	copts = append(copts, s.clientOpts...)
	client, err := pubsub.NewClient(ctx, ps.Project, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcs notifications for source %q: pubsub client: %w", n.Source, err)
	}
	sub := client.Subscriber(ps.Subscription)
	sub.ReceiveSettings.MaxOutstandingMessages = s.maxOutstanding
	// Loops enough that up to maxOutstanding messages are worked on at
	// once, each batch one catalog commit.
	loops := min(s.maxOutstanding, 8)
	kc, err := notify.NewConsumer(notify.ConsumerConfig{
		Driver:      &pubsubDriver{sub: sub, name: fmt.Sprintf("gcs notifications for source %q: receive from %s", n.Source, sub)},
		Parse:       parseMessage,
		App:         app,
		Intake:      notify.NewIntake(reg, log, n.Source, TransportPubSub, "subscription", sub.String()),
		Concurrency: loops,
		Batch:       max(s.maxOutstanding/loops, 1),
		// The client library extends the leases of messages in hand.
		Grace:      s.grace,
		NackDelay:  s.nackDelay,
		FailedHint: "it will be redelivered",
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("gcs notifications for source %q: %w", n.Source, err)
	}
	return &Consumer{Consumer: kc, client: client}, nil
}

// Close releases the Pub/Sub client. Call it after Run returned.
func (c *Consumer) Close() error { return c.client.Close() }

// parseMessage is Parse in notify's vocabulary: a message Parse skips as a
// whole is one Skip (malformed or unsupported), acknowledged like any other.
func parseMessage(m *notify.Message) (notify.Parsed, error) {
	evs, sk := Parse(m.Attributes, m.Body)
	if sk == nil {
		return notify.Parsed{Events: evs, Format: "pubsub"}, nil
	}
	sk.ID = m.ID
	sk.Type, sk.Bucket, sk.Key = clip(m.Attributes[attrEventType]), clip(m.Attributes[attrBucket]), clip(m.Attributes[attrObject])
	return notify.Parsed{Format: "pubsub", Skips: []notify.Skip{*sk}}, nil
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
