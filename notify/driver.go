package notify

import (
	"context"
	"time"

	"github.com/imgly/syncer/internal/retry"
)

// Message is one delivery a queue Driver received.
type Message struct {
	// ID identifies the message in logs.
	ID string
	// Body is what the parser reads.
	Body []byte
	// Attributes are the transport's message attributes (Pub/Sub), if any.
	Attributes map[string]string
	// Deliveries counts the deliveries of this message, this one included;
	// 0 when the transport does not say.
	Deliveries int64
	// Handle is the driver's own (a receipt handle, a pop receipt, the SDK
	// message); the kernel never looks at it.
	Handle any
}

// Driver is one queue transport as the kernel sees it: a thin translation of
// one SDK. Drivers never retry, sleep or count; the kernel (Consumer) owns
// the loop, its backoff, the visibility heartbeats, shutdown and the rule
// that a message is acknowledged only after its events were applied.
// Methods may be called from several goroutines at once.
type Driver interface {
	// Open prepares the driver and checks that the queue or subscription
	// exists. Its error stops the consumer before it starts.
	Open(ctx context.Context) error
	// Receive returns up to max messages. It blocks at most for the
	// transport's wait (a long poll, or not at all) and may return none.
	Receive(ctx context.Context, max int) ([]*Message, error)
	// Ack removes messages for good: applied, or never worth retrying.
	Ack(ctx context.Context, msgs []*Message) error
	// Nack gives messages back for redelivery. Transports that redeliver
	// once the visibility timeout lapses may do nothing.
	Nack(ctx context.Context, msgs []*Message) error
	// Extend keeps messages from redelivery for another visibility period.
	Extend(ctx context.Context, msgs []*Message) error
	// Fatal says err (from Open or Receive) will not be cured by retrying:
	// the queue is missing, access is denied.
	Fatal(err error) bool
	// Close releases the driver once the kernel stopped using it.
	Close() error
}

// DeadLetterer is a Driver whose transport has no dead-letter path of its
// own: the kernel moves a message delivered more than MaxDeliveries times
// there (then acknowledges it) instead of handing it to the parser again.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, m *Message) error
}

// ConsumerConfig is one source's queue consumer: a Driver, how to parse its
// messages, where to apply them, and the loop's policy.
type ConsumerConfig struct {
	Driver Driver
	// Parse turns one message into events; an error refuses it (it is
	// counted as malformed and acknowledged: it would never get better).
	Parse func(m *Message) (Parsed, error)
	App   Applier
	// Intake counts and logs for the source's transport.
	Intake *Intake

	// Concurrency is the number of receive loops (default 1); Batch the
	// most messages one Receive asks for (default 10).
	Concurrency, Batch int
	// Heartbeat is how often a batch in hand has its visibility extended;
	// zero never (the transport extends leases itself).
	Heartbeat time.Duration
	// Grace is how long a batch in hand may still be worked on after Run's
	// context ends (default 10 s); WorkLimit bounds a batch's work in any
	// case (zero: no bound beyond Grace).
	Grace, WorkLimit time.Duration
	// ReceiveBackoff bounds the waits after failed receives (default
	// 200 ms doubling to 30 s, jittered).
	ReceiveBackoff retry.Policy
	// Idle is the wait after an empty receive, for transports without a
	// long poll (see IdlePoll); zero Min: receive again at once.
	Idle IdlePoll
	// NackDelay holds a failed message that long before it is nacked, so
	// that a transport redelivering nacks at once does not busy-loop.
	NackDelay time.Duration
	// MaxDeliveries: with a DeadLetterer driver, a message delivered more
	// often than this is dead-lettered. Zero: never.
	MaxDeliveries int64
	// FailedHint is logged with a failed apply: when it comes back.
	FailedHint string
}

func (cfg *ConsumerConfig) defaults() {
	cfg.Concurrency = max(cfg.Concurrency, 1)
	if cfg.Batch <= 0 {
		cfg.Batch = 10
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.ReceiveBackoff.Min <= 0 {
		cfg.ReceiveBackoff = retry.Policy{Min: 200 * time.Millisecond, Max: 30 * time.Second}
	}
	if cfg.FailedHint == "" {
		cfg.FailedHint = "it will be redelivered"
	}
}

// IdlePoll paces the receives of a transport without a long poll (Storage
// Queues): after an empty receive the loop waits, Min at first and doubling
// (jittered) to Max while the queue stays empty; a message resets it to Min.
// Max bounds the extra latency of a notification to an idle queue and sets
// the idle request rate: about 86,400 s / (0.75 × Max) receives a day per
// loop.
type IdlePoll struct {
	Min, Max time.Duration
}

type idleState struct{ b *retry.Backoff }

func (p IdlePoll) start() idleState {
	if p.Min <= 0 {
		return idleState{}
	}
	return idleState{b: retry.Policy{Min: p.Min, Max: p.Max}.Start()}
}

// wait sleeps after an empty receive; false when ctx ended.
func (s idleState) wait(ctx context.Context) bool {
	if s.b == nil {
		return ctx.Err() == nil
	}
	return s.b.Wait(ctx)
}

// busy notes a non-empty receive.
func (s idleState) busy() {
	if s.b != nil {
		s.b.Reset()
	}
}
