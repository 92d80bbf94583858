package notify

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterCounterVec registers c with reg and returns the counter to use:
// the one already registered under the same description when several
// consumers (one per source) share a registry, or c itself. A conflicting
// collector of the same name leaves c counting unregistered rather than
// failing the consumer.
func RegisterCounterVec(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return prev
			}
		}
	}
	return c
}

// NewCounterVec returns a counter with one variable label, every value of
// values present from the start (dashboards then see zeros, not gaps), and
// registered with reg through RegisterCounterVec; a nil reg registers
// nothing.
func NewCounterVec(reg prometheus.Registerer, opts prometheus.CounterOpts, label string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(opts, []string{label})
	for _, v := range values {
		c.WithLabelValues(v)
	}
	if reg == nil {
		return c
	}
	return RegisterCounterVec(reg, c)
}

// Secret is a webhook's configured shared secret, kept as its SHA-256:
// comparing digests keeps the comparison constant-time in the secret's
// length too. The zero Secret (none configured) matches nothing.
type Secret struct {
	digest [sha256.Size]byte
	set    bool
}

// NewSecret returns the Secret of s; an empty s is no secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{digest: sha256.Sum256([]byte(s)), set: true}
}

// IsSet says a secret is configured.
func (s Secret) IsSet() bool { return s.set }

// Match says got is the secret.
func (s Secret) Match(got string) bool {
	if !s.set {
		return false
	}
	d := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(d[:], s.digest[:]) == 1
}

// Detach returns a context for work that should finish even when ctx is
// cancelled: it is cancelled only grace after ctx is, or by the returned
// function. A consumer asked to stop lets a commit under way complete
// rather than abandon it half done.
func Detach(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-work.Done():
		}
	})
	return work, func() {
		stop()
		cancel()
	}
}

// OnceLog logs the first occurrence of each distinct problem at its level
// and later ones at debug, so that a misconfigured notification (every
// object-access event of a bucket, say) is visible once without flooding the
// log; the counters keep the totals. The set of keys is bounded; past the
// bound everything logs at debug.
type OnceLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	seen map[string]struct{}
}

const onceLogMax = 1024

// NewOnceLog returns a OnceLog writing to log.
func NewOnceLog(log *slog.Logger) *OnceLog {
	return &OnceLog{log: log, seen: map[string]struct{}{}}
}

// Log logs msg at level the first time key is seen, at debug afterwards.
func (o *OnceLog) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	o.mu.Lock()
	_, dup := o.seen[key]
	first := !dup && len(o.seen) < onceLogMax
	if first {
		o.seen[key] = struct{}{}
	}
	o.mu.Unlock()
	if !first {
		level = slog.LevelDebug
	}
	o.log.Log(ctx, level, msg, args...)
}

// Outcomes (label "outcome" of syncer_notifications_total). Each
// notification — one provider event: an S3 record, a Pub/Sub message, an
// Event Grid event — is counted once, with what became of it; a delivery
// that yields no event at all (unparseable, too large, unauthorized) counts
// as one notification. A delivery that is retried is counted again.
const (
	// OutcomeApplied: committed a change to the catalog.
	OutcomeApplied = "applied"
	// OutcomeSkippedStale: changed nothing: a duplicate, an older
	// sequencer than the catalog's, or the state already recorded.
	OutcomeSkippedStale = "skipped_stale"
	// OutcomeSkippedFiltered: the key is outside the source's prefix or
	// filters.
	OutcomeSkippedFiltered = "skipped_filtered"
	// OutcomeSkippedForeign: names a bucket (container) no source of this
	// transport watches.
	OutcomeSkippedForeign = "skipped_foreign"
	// OutcomeSkippedIgnored: a kind of event syncer does not act on (test
	// events, object access, directories, GCS overwrite notices).
	OutcomeSkippedIgnored = "skipped_ignored"
	// OutcomeMalformed: refused by the parser (or over the size limit).
	OutcomeMalformed = "malformed"
	// OutcomeUnauthorized: a webhook request without the right secret.
	OutcomeUnauthorized = "unauthorized"
	// OutcomeFailed: applying failed; the delivery is retried.
	OutcomeFailed = "failed"
	// OutcomeDeadLettered: given up on; moved to the poison queue.
	OutcomeDeadLettered = "dead_lettered"
)

// Outcomes lists every outcome, for initialising counters at zero.
var Outcomes = []string{
	OutcomeApplied, OutcomeSkippedStale, OutcomeSkippedFiltered, OutcomeSkippedForeign, OutcomeSkippedIgnored,
	OutcomeMalformed, OutcomeUnauthorized, OutcomeFailed, OutcomeDeadLettered,
}

// Metrics are the notification metrics every transport and the Router
// share: one family each, labelled by source and transport, so that
// dashboards and alerts need no per-provider names.
type Metrics struct {
	Total  *prometheus.CounterVec   // syncer_notifications_total{source,transport,outcome}
	Lag    *prometheus.HistogramVec // syncer_notification_lag_seconds{source,transport}
	Errors *prometheus.CounterVec   // syncer_notification_transport_errors_total{source,transport,op}
}

// NewMetrics returns the notification metrics registered with reg, the
// collectors already registered there if another transport (or the Router)
// registered them first. A nil reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_notifications_total",
			Help: "Notifications (provider events) by source, transport and outcome: applied, skipped_stale, skipped_filtered, skipped_foreign, skipped_ignored, malformed, unauthorized, failed, dead_lettered.",
		}, []string{"source", "transport", "outcome"}),
		Lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncer_notification_lag_seconds",
			Help:    "Time from the provider's event time to the commit of the change it announced.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"source", "transport"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_notification_transport_errors_total",
			Help: "Failed queue operations (receive, ack, nack, extend, dead_letter) of notification consumers.",
		}, []string{"source", "transport", "op"}),
	}
	if reg == nil {
		return m
	}
	m.Total = RegisterCounterVec(reg, m.Total)
	m.Errors = RegisterCounterVec(reg, m.Errors)
	if err := reg.Register(m.Lag); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				m.Lag = prev
			}
		}
	}
	return m
}

// Transport is one source's notification transport: it counts into the
// shared Metrics and remembers when the last message arrived.
type Transport struct {
	Source, Name string
	m            *Metrics
	last         atomic.Int64 // unix nanoseconds; 0: none yet
}

// NewTransport returns the Transport of source's transport name, its
// counters present at zero for every outcome.
func NewTransport(reg prometheus.Registerer, source, name string) *Transport {
	t := &Transport{Source: source, Name: name, m: NewMetrics(reg)}
	for _, o := range Outcomes {
		t.m.Total.WithLabelValues(source, name, o)
	}
	t.m.Lag.WithLabelValues(source, name)
	return t
}

// Count adds n notifications with outcome.
func (t *Transport) Count(outcome string, n int) {
	if n > 0 {
		t.m.Total.WithLabelValues(t.Source, t.Name, outcome).Add(float64(n))
	}
}

// Error counts a failed queue operation.
func (t *Transport) Error(op string) { t.m.Errors.WithLabelValues(t.Source, t.Name, op).Inc() }

// Received records that a message arrived now.
func (t *Transport) Received() { t.last.Store(time.Now().UnixNano()) }

// LastMessageAt is when the last message arrived (zero: none yet).
func (t *Transport) LastMessageAt() time.Time {
	n := t.last.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Context returns ctx carrying t, so that the Router counts what it decides
// (applied, stale, filtered, foreign) under this transport.
func (t *Transport) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, transportKey{}, t)
}

type transportKey struct{}

// TransportFrom returns the Transport Context attached, or nil.
func TransportFrom(ctx context.Context) *Transport {
	t, _ := ctx.Value(transportKey{}).(*Transport)
	return t
}
