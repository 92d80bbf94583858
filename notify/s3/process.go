package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
)

// Message outcomes, tallied per delivery in metrics.messages.
const (
	outApplied      = "applied"      // Apply returned nil for its events
	outSkipped      = "skipped"      // nothing to apply (test, ignored, foreign)
	outMalformed    = "malformed"    // body refused by the parser
	outTooLarge     = "too_large"    // body over MaxBodySize
	outApplyFailed  = "apply_failed" // Apply returned an error; redelivered
	outUnauthorized = "unauthorized" // webhook: missing or wrong token
)

// Record outcomes, tallied per record in metrics.records.
const (
	recEvent     = "event" // handed to Apply
	recIgnored   = string(SkipIgnored)
	recTest      = string(SkipTest)
	recMalformed = string(SkipMalformed)
	recForeign   = "foreign_bucket" // names a bucket other than the source's
)

// metrics are what the SQS consumer and the webhook count. The exported
// metrics are the shared notify.Metrics (syncer_notifications_total and
// friends, through t); messages and records are in-process tallies per
// delivery and per record, unregistered, which this package's tests and
// benchmarks read.
type metrics struct {
	t        *notify.Transport
	messages *prometheus.CounterVec
	records  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, source, transport string) *metrics {
	return &metrics{
		t: notify.NewTransport(reg, source, transport),
		messages: notify.NewCounterVec(nil, prometheus.CounterOpts{Name: "s3_messages"}, "outcome",
			outApplied, outSkipped, outMalformed, outTooLarge, outApplyFailed, outUnauthorized),
		records: notify.NewCounterVec(nil, prometheus.CounterOpts{Name: "s3_records"}, "outcome",
			recEvent, recIgnored, recTest, recMalformed, recForeign),
	}
}

// processor is what the SQS consumer and the webhook share: parse a body,
// count and log what it skips, keep the events of the source's bucket.
type processor struct {
	source string
	bucket string
	log    *slog.Logger
	once   *notify.OnceLog
	m      *metrics
}

func newProcessor(src config.Source, transport string, log *slog.Logger, reg prometheus.Registerer, attrs ...any) *processor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(append([]any{"source", src.ID, "transport", transport}, attrs...)...)
	return &processor{
		source: src.ID,
		bucket: src.Bucket,
		log:    log,
		once:   notify.NewOnceLog(log),
		m:      newMetrics(reg, src.ID, transport),
	}
}

// excerptLen bounds the body excerpt logged with a malformed message.
const excerptLen = 256

// prepare parses body and returns the events to apply. A refused body is
// counted and logged here and returned as an error (ErrMalformed,
// ErrTooLarge); the caller acknowledges it all the same. attrs are logged
// with every line (message id, receive count, remote address).
func (p *processor) prepare(ctx context.Context, body []byte, attrs ...any) ([]notify.Event, error) {
	attrs = slices.Clip(attrs) // each log line appends its own fields
	p.m.t.Received()
	res, err := Parse(body)
	if err != nil {
		p.m.t.Count(notify.OutcomeMalformed, 1) // too large included
		out := outMalformed
		if errors.Is(err, ErrTooLarge) {
			out = outTooLarge
		}
		p.m.messages.WithLabelValues(out).Inc()
		excerpt := body
		if len(excerpt) > excerptLen {
			excerpt = excerpt[:excerptLen]
		}
		p.once.Log(ctx, slog.LevelWarn, out+":"+err.Error(), "s3 notification refused",
			append(attrs, "err", err, "bytes", len(body), "body_excerpt", string(excerpt))...)
		return nil, err
	}
	for _, s := range res.Skips {
		p.m.records.WithLabelValues(string(s.Kind)).Inc()
		if s.Kind == SkipMalformed {
			p.m.t.Count(notify.OutcomeMalformed, 1)
		} else {
			p.m.t.Count(notify.OutcomeSkippedIgnored, 1)
		}
		level := slog.LevelInfo
		if s.Kind == SkipMalformed {
			level = slog.LevelWarn
		}
		p.once.Log(ctx, level, fmt.Sprintf("%s:%s:%s", s.Kind, s.Name, s.Reason), "s3 notification record skipped",
			append(attrs, "kind", s.Kind, "format", res.Format, "event", s.Name, "bucket", s.Bucket,
				"key", s.Key, "reason", s.Reason)...)
	}
	events := res.Events[:0:0]
	for _, ev := range res.Events {
		if ev.Bucket != p.bucket {
			p.m.records.WithLabelValues(recForeign).Inc()
			p.m.t.Count(notify.OutcomeSkippedForeign, 1)
			p.once.Log(ctx, slog.LevelWarn, "foreign:"+ev.Bucket, "s3 notification for another bucket skipped",
				append(attrs, "bucket", ev.Bucket, "want_bucket", p.bucket, "key", ev.Key, "format", res.Format)...)
			continue
		}
		events = append(events, ev)
	}
	p.m.records.WithLabelValues(recEvent).Add(float64(len(events)))
	return events, nil
}

// LastMessageAt is when the last message (or webhook request with a valid
// token) arrived; zero before the first.
func (p *processor) LastMessageAt() time.Time { return p.m.t.LastMessageAt() }
