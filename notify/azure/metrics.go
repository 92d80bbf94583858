package azure

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
)

// Message outcomes, tallied per delivery in metrics.messages.
const (
	outApplied      = "applied"      // Apply returned nil; deleted / answered 200
	outSkipped      = "skipped"      // nothing to apply (ignored types only)
	outMalformed    = "malformed"    // refused by the parser; deleted / 400
	outTooLarge     = "too_large"    // webhook body over the limit; 413
	outApplyFailed  = "apply_failed" // Apply failed; redelivered / 500
	outPoisoned     = "poisoned"     // queue: moved to the poison queue
	outUnauthorized = "unauthorized" // webhook: missing or wrong secret; 401
	outValidation   = "validation"   // webhook: subscription validation handshake
)

// Event outcomes, tallied per event in metrics.events: "event" for events
// handed to Apply, else a Reason.
const evApplied = "event"

// metrics are what the queue consumer and the webhook count. The exported
// metrics are the shared notify.Metrics (syncer_notifications_total and
// friends, through t); messages and events are in-process tallies per
// delivery and per event, unregistered, which this package's tests read.
type metrics struct {
	t        *notify.Transport
	messages *prometheus.CounterVec
	events   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, source, transport string) *metrics {
	return &metrics{
		t: notify.NewTransport(reg, source, transport),
		messages: notify.NewCounterVec(nil, prometheus.CounterOpts{Name: "azure_messages"}, "outcome",
			outApplied, outSkipped, outMalformed, outTooLarge, outApplyFailed, outPoisoned, outUnauthorized, outValidation),
		events: notify.NewCounterVec(nil, prometheus.CounterOpts{Name: "azure_events"}, "outcome",
			evApplied, string(ReasonEventType), string(ReasonDirectory), string(ReasonEventGrid), string(ReasonMalformed)),
	}
}

// processor is what the queue consumer and the webhook share: parse a body,
// log and count what it skips.
type processor struct {
	log  *slog.Logger
	once *notify.OnceLog
	m    *metrics
}

func newProcessor(src config.Source, transport string, log *slog.Logger, reg prometheus.Registerer, attrs ...any) *processor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(append([]any{"source", src.ID, "transport", transport}, attrs...)...)
	return &processor{log: log, once: notify.NewOnceLog(log), m: newMetrics(reg, src.ID, transport)}
}

// LastMessageAt is when the last delivery arrived; zero before the first.
func (p *processor) LastMessageAt() time.Time { return p.m.t.LastMessageAt() }

// excerptLen bounds the body excerpt logged with a refused message.
const excerptLen = 256

// prepare parses body into the events to apply. A refused body is counted
// and logged here and returned as an error wrapping ErrMalformed. Events of
// every container are returned: the applier routes them to the sources that
// watch their container (one queue may serve several sources) and ignores
// the rest.
func (p *processor) prepare(ctx context.Context, body []byte, attrs ...any) ([]notify.Event, error) {
	p.m.t.Received()
	res, err := Parse(body)
	for _, s := range res.Skips {
		p.m.events.WithLabelValues(string(s.Reason)).Inc()
		switch {
		case err != nil:
			// The delivery is refused as a whole and counted once below.
		case s.Reason == ReasonMalformed:
			p.m.t.Count(notify.OutcomeMalformed, 1)
		default:
			p.m.t.Count(notify.OutcomeSkippedIgnored, 1)
		}
		level := slog.LevelInfo
		if s.Reason == ReasonMalformed {
			level = slog.LevelWarn
		}
		p.once.Log(ctx, level, fmt.Sprintf("%s:%s:%s", s.Reason, s.Type, s.Detail), "azure event skipped",
			append(attrs, "reason", s.Reason, "type", s.Type, "event_id", s.ID, "detail", s.Detail)...)
	}
	if err != nil {
		p.refused(ctx, outMalformed, err, body, attrs...)
		return nil, err
	}
	p.m.events.WithLabelValues(evApplied).Add(float64(len(res.Events)))
	return res.Events, nil
}

// refused counts and logs a message that cannot be used at all.
func (p *processor) refused(ctx context.Context, outcome string, err error, body []byte, attrs ...any) {
	p.m.messages.WithLabelValues(outcome).Inc()
	p.m.t.Received()
	p.m.t.Count(notify.OutcomeMalformed, 1) // too large included
	excerpt := body
	if len(excerpt) > excerptLen {
		excerpt = excerpt[:excerptLen]
	}
	p.once.Log(ctx, slog.LevelWarn, outcome+":"+err.Error(), "azure notification refused",
		append(attrs, "err", err, "bytes", len(body), "body_excerpt", string(excerpt))...)
}
