package azure

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
)

// Message outcomes (label "outcome" of syncer_notify_azure_messages_total).
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

// Event outcomes (label "outcome" of syncer_notify_azure_events_total):
// "event" for events handed to Apply, else a Reason.
const evApplied = "event"

type metrics struct {
	messages *prometheus.CounterVec
	events   *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

// newMetrics creates the counters of one source's transport ("queue",
// "webhook"). Source and transport are constant labels so that consumers of
// several sources register side by side; registering the same pair twice
// reuses the first collectors.
func newMetrics(reg prometheus.Registerer, source, transport string) *metrics {
	labels := prometheus.Labels{"source": source, "transport": transport}
	return &metrics{
		messages: notify.NewCounterVec(reg, prometheus.CounterOpts{
			Name:        "syncer_notify_azure_messages_total",
			Help:        "Azure Event Grid deliveries (queue messages, webhook requests) by outcome.",
			ConstLabels: labels,
		}, "outcome", outApplied, outSkipped, outMalformed, outTooLarge, outApplyFailed, outPoisoned, outUnauthorized, outValidation),
		events: notify.NewCounterVec(reg, prometheus.CounterOpts{
			Name:        "syncer_notify_azure_events_total",
			Help:        "Azure Event Grid events by outcome: event (applied), event_type, directory, eventgrid (ignored), malformed.",
			ConstLabels: labels,
		}, "outcome", evApplied, string(ReasonEventType), string(ReasonDirectory), string(ReasonEventGrid), string(ReasonMalformed)),
		errors: notify.NewCounterVec(reg, prometheus.CounterOpts{
			Name:        "syncer_notify_azure_transport_errors_total",
			Help:        "Failed Storage Queue operations (dequeue, delete, update, poison) of Azure notification consumers.",
			ConstLabels: labels,
		}, "op"),
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

// excerptLen bounds the body excerpt logged with a refused message.
const excerptLen = 256

// prepare parses body into the events to apply. A refused body is counted
// and logged here and returned as an error wrapping ErrMalformed. Events of
// every container are returned: the applier routes them to the sources that
// watch their container (one queue may serve several sources) and ignores
// the rest.
func (p *processor) prepare(ctx context.Context, body []byte, attrs ...any) ([]notify.Event, error) {
	res, err := Parse(body)
	for _, s := range res.Skips {
		p.m.events.WithLabelValues(string(s.Reason)).Inc()
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
	excerpt := body
	if len(excerpt) > excerptLen {
		excerpt = excerpt[:excerptLen]
	}
	p.once.Log(ctx, slog.LevelWarn, outcome+":"+err.Error(), "azure notification refused",
		append(attrs, "err", err, "bytes", len(body), "body_excerpt", string(excerpt))...)
}
