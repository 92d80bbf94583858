package notify

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SkipReason is the one vocabulary for why a notification yields no change,
// whichever transport or parser decided it. Parsers decide the first three
// (what a body says); the Router decides the rest (what the sources watch).
type SkipReason string

const (
	// SkipMalformed: a record or event that cannot be understood.
	SkipMalformed SkipReason = "malformed"
	// SkipUnsupported: an event type syncer does not act on (tagging,
	// object access, directories, tier changes, the delete half of a GCS
	// overwrite, Event Grid's own events).
	SkipUnsupported SkipReason = "unsupported"
	// SkipTest: a sender's test event or connectivity probe.
	SkipTest SkipReason = "test"
	// SkipForeignBucket: a bucket (container) no source of the transport
	// watches. Decided by the Router only.
	SkipForeignBucket SkipReason = "foreign_bucket"
	// SkipFiltered: the key is outside the source's prefix or filters.
	// Decided by the Router only.
	SkipFiltered SkipReason = "filtered"
	// SkipStale: a duplicate, older, or already recorded state. Decided by
	// the catalog through the Router.
	SkipStale SkipReason = "stale"
)

// outcome is the syncer_notifications_total outcome a parser's skip counts
// under.
func (r SkipReason) outcome() string {
	switch r {
	case SkipMalformed:
		return OutcomeMalformed
	case SkipForeignBucket:
		return OutcomeSkippedForeign
	case SkipFiltered:
		return OutcomeSkippedFiltered
	case SkipStale:
		return OutcomeSkippedStale
	}
	return OutcomeSkippedIgnored
}

// Skip is one record or event of a delivery that produced no Event.
type Skip struct {
	Reason SkipReason
	// Type is the provider's event name or type.
	Type   string
	ID     string
	Bucket string
	Key    string
	// Code is the parser's own finer reason ("bad_payload"), when it has
	// one: logged, and counted in the in-process Tally.
	Code string
	// Detail says what exactly was wrong or ignored.
	Detail string
}

// Parsed is what a parser made of one delivery: the events to apply and
// what it left out. Parsers never drop events by bucket: routing is the
// Router's.
type Parsed struct {
	Events []Event
	Skips  []Skip
	// Format names the body's format in logs ("s3", "sns", "eventgrid"...).
	Format string
}

// Delivery outcomes: what became of one delivery (a queue message, a
// webhook request). They label the in-process Tally, which tests and
// benchmarks read; the exported counts are per notification
// (syncer_notifications_total).
const (
	DeliveryApplied      = "applied"       // Apply returned nil; acknowledged
	DeliverySkipped      = "skipped"       // nothing to apply; acknowledged
	DeliveryMalformed    = "malformed"     // refused by the parser; acknowledged
	DeliveryTooLarge     = "too_large"     // over the size limit; acknowledged
	DeliveryApplyFailed  = "apply_failed"  // Apply failed; redelivered
	DeliveryDeadLettered = "dead_lettered" // moved to the dead-letter queue
	DeliveryUnauthorized = "unauthorized"  // webhook: missing or wrong secret
	DeliveryHandshake    = "handshake"     // webhook: a transport handshake answered
)

// EventsTaken labels the events handed to Apply in Tally.Events; the other
// labels there are SkipReasons.
const EventsTaken = "event"

// Tally is the in-process count of one transport's deliveries by outcome and
// of its events by what became of them; it is not exported to Prometheus.
type Tally struct {
	Deliveries *prometheus.CounterVec // label: a Delivery* outcome
	Events     *prometheus.CounterVec // label: EventsTaken or a SkipReason
	Codes      *prometheus.CounterVec // label: a parser's Skip.Code
}

func newTally() *Tally {
	return &Tally{
		Deliveries: NewCounterVec(nil, prometheus.CounterOpts{Name: "deliveries"}, "outcome",
			DeliveryApplied, DeliverySkipped, DeliveryMalformed, DeliveryTooLarge, DeliveryApplyFailed,
			DeliveryDeadLettered, DeliveryUnauthorized, DeliveryHandshake),
		Events: NewCounterVec(nil, prometheus.CounterOpts{Name: "events"}, "outcome",
			EventsTaken, string(SkipMalformed), string(SkipUnsupported), string(SkipTest)),
		Codes: NewCounterVec(nil, prometheus.CounterOpts{Name: "codes"}, "code"),
	}
}

// Intake is what every transport of one source shares between receiving a
// delivery and applying it: it counts and logs what a parser refused or
// skipped, so that queue consumers and webhooks report alike.
type Intake struct {
	T     *Transport
	Log   *slog.Logger
	Tally *Tally
	once  *OnceLog
}

// NewIntake returns the Intake of source's transport; attrs are logged with
// every line (the queue's name, say). A nil log discards.
func NewIntake(reg prometheus.Registerer, log *slog.Logger, source, transport string, attrs ...any) *Intake {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(append([]any{"source", source, "transport", transport}, attrs...)...)
	return &Intake{T: NewTransport(reg, source, transport), Log: log, Tally: newTally(), once: NewOnceLog(log)}
}

// excerptLen bounds the body excerpt logged with a refused delivery.
const excerptLen = 256

// Deliver counts one delivery's outcome in the Tally.
func (in *Intake) Deliver(outcome string) { in.Tally.Deliveries.WithLabelValues(outcome).Inc() }

// Refused counts and logs a delivery refused as a whole (outcome
// DeliveryMalformed or DeliveryTooLarge): one malformed notification.
func (in *Intake) Refused(ctx context.Context, outcome string, err error, body []byte, attrs ...any) {
	in.Deliver(outcome)
	in.T.Count(OutcomeMalformed, 1)
	excerpt := body[:min(len(body), excerptLen)]
	in.once.Log(ctx, slog.LevelWarn, outcome+":"+err.Error(), "notification refused",
		append(slices.Clip(attrs), "err", err, "bytes", len(body), "body_excerpt", string(excerpt))...)
}

// Take counts and logs p's skips and returns the events to apply. A
// delivery with nothing to apply is counted as skipped here.
func (in *Intake) Take(ctx context.Context, p Parsed, attrs ...any) []Event {
	attrs = slices.Clip(attrs)
	for _, s := range p.Skips {
		in.Tally.Events.WithLabelValues(string(s.Reason)).Inc()
		in.T.Count(s.Reason.outcome(), 1)
		if s.Code != "" {
			in.Tally.Codes.WithLabelValues(s.Code).Inc()
		}
		level := slog.LevelInfo
		if s.Reason == SkipMalformed {
			level = slog.LevelWarn
		}
		in.once.Log(ctx, level, fmt.Sprintf("%s:%s:%s:%s", s.Reason, s.Code, s.Type, s.Detail), "notification skipped",
			append(attrs, "reason", s.Reason, "code", s.Code, "format", p.Format, "type", s.Type, "id", s.ID,
				"bucket", s.Bucket, "key", s.Key, "detail", s.Detail)...)
	}
	in.Tally.Events.WithLabelValues(EventsTaken).Add(float64(len(p.Events)))
	if len(p.Events) == 0 {
		in.Deliver(DeliverySkipped)
	}
	return p.Events
}

// Failed counts and logs a delivery whose Apply failed.
func (in *Intake) Failed(ctx context.Context, events []Event, err error, what string, attrs ...any) {
	in.Deliver(DeliveryApplyFailed)
	in.T.Count(OutcomeFailed, len(events))
	args := append(slices.Clip(attrs), "err", err, "events", len(events))
	if len(events) > 0 {
		args = append(args, "bucket", events[0].Bucket, "key", events[0].Key)
	}
	in.Log.WarnContext(ctx, "notification not applied; "+what, args...)
}

// LastMessageAt is when the last delivery arrived; zero before the first.
func (in *Intake) LastMessageAt() time.Time { return in.T.LastMessageAt() }
