package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
)

// Outbox is what the publisher needs of one source's catalog.
type Outbox interface {
	ID() string
	Outbox(ctx context.Context, from uint64, limit int) ([]catalog.Change, error)
	PendingBatch(ctx context.Context) (catalog.Batch, bool, error)
	BeginBatch(ctx context.Context, b catalog.Batch) error
	AckBatch(ctx context.Context, b catalog.Batch) error
	// Wait receives after a commit added outbox records.
	Wait() <-chan struct{}
}

// Options configure a Publisher.
type Options struct {
	Stream        string
	SubjectPrefix string
	// Window coalesces the changes of a source committed this close
	// together into one event.
	Window time.Duration
	// MaxChanges caps the changes of one event.
	MaxChanges int
	// Instance is the catalog's instance id, part of every event id.
	Instance string
	Log      *slog.Logger
	// Registerer receives the publisher's metrics; nil registers none.
	Registerer prometheus.Registerer
	// OnPublish, if set, is called after each event is acknowledged.
	OnPublish func(CloudEvent)
}

// Publisher drains sources' outboxes to JetStream, one goroutine per source
// so that each source's events keep their order and a slow source does not
// hold up the others.
type Publisher struct {
	js   jetstream.JetStream
	opts Options
	log  *slog.Logger
	m    metrics

	mu      sync.Mutex
	healthy map[string]error
}

type metrics struct {
	events  *prometheus.CounterVec
	changes *prometheus.CounterVec
	errors  *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewPublisher returns a publisher over an established NATS connection.
func NewPublisher(nc *nats.Conn, opts Options) (*Publisher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if opts.MaxChanges < 1 {
		opts.MaxChanges = 500
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	p := &Publisher{js: js, opts: opts, log: opts.Log, healthy: map[string]error{}}
	p.m = metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_events_published_total", Help: "Contents-changed events acknowledged by JetStream.",
		}, []string{"source"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_changes_published_total", Help: "Object changes published, by operation.",
		}, []string{"source", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_publish_errors_total", Help: "Failed publish attempts (retried).",
		}, []string{"source"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "syncer_change_publish_latency_seconds",
			Help:    "Time from a change's commit to its event's JetStream ack.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{p.m.events, p.m.changes, p.m.errors, p.m.latency} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register publisher metrics: %w", err)
			}
		}
	}
	return p, nil
}

// EnsureStream creates the stream if it is missing. An existing stream is
// left as its owner configured it.
func (p *Publisher) EnsureStream(ctx context.Context) error {
	_, err := p.js.Stream(ctx, p.opts.Stream)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", p.opts.Stream, err)
	}
	_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        p.opts.Stream,
		Description: "syncer contents-changed events",
		Subjects:    []string{p.opts.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  5 * time.Minute,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", p.opts.Stream, err)
	}
	return nil
}

// Healthy returns the last publish error of any source, nil when all
// sources' last attempts succeeded.
func (p *Publisher) Healthy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for id, err := range p.healthy {
		if err != nil {
			errs = append(errs, fmt.Errorf("source %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Publisher) setHealth(id string, err error) {
	p.mu.Lock()
	p.healthy[id] = err
	p.mu.Unlock()
}

// Run publishes until ctx is cancelled, then flushes what the outboxes hold
// for up to flushTimeout, and returns. Undelivered changes stay in the
// outbox for the next start.
func (p *Publisher) Run(ctx context.Context, sources []Outbox, flushTimeout time.Duration) {
	var wg sync.WaitGroup
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.runSource(ctx, src)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			if err := p.Flush(fctx, src); err != nil {
				p.log.Warn("outbox not flushed at shutdown; it is kept for the next start", "source", src.ID(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// Flush publishes everything src's outbox holds, without coalescing delays.
func (p *Publisher) Flush(ctx context.Context, src Outbox) error {
	for {
		done, err := p.step(ctx, src, false)
		if err != nil || done {
			return err
		}
	}
}

func (p *Publisher) runSource(ctx context.Context, src Outbox) {
	// A periodic look covers a wake-up lost between a read and a wait.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		idle, err := p.step(ctx, src, true)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("publisher: outbox failed", "source", src.ID(), "err", err)
				p.sleep(ctx, time.Second)
			}
			continue
		}
		if !idle {
			continue
		}
		select {
		case <-ctx.Done():
		case <-src.Wait():
		case <-tick.C:
		}
	}
}

// step publishes one batch of src's outbox. It reports idle when the outbox
// was empty. With coalesce, it waits until the window after the oldest
// change has passed (or a full batch is there) before cutting the batch.
func (p *Publisher) step(ctx context.Context, src Outbox, coalesce bool) (idle bool, err error) {
	b, ok, err := src.PendingBatch(ctx)
	if err != nil {
		return false, err
	}
	var changes []catalog.Change
	if ok {
		// A batch recorded before a crash or failed publish is published
		// again exactly as it was, so the bus can drop the duplicate.
		changes, err = src.Outbox(ctx, b.First, int(b.Last-b.First+1))
		if err != nil {
			return false, err
		}
		changes = within(changes, b)
	} else {
		head, err := src.Outbox(ctx, 0, 1)
		if err != nil || len(head) == 0 {
			return true, err
		}
		if coalesce && p.opts.Window > 0 {
			if wait := time.Until(head[0].At.Add(p.opts.Window)); wait > 0 {
				more, err := src.Outbox(ctx, head[0].Seq, p.opts.MaxChanges)
				if err != nil {
					return false, err
				}
				if len(more) < p.opts.MaxChanges && !p.sleep(ctx, wait) {
					return false, nil
				}
			}
		}
		changes, err = src.Outbox(ctx, head[0].Seq, p.opts.MaxChanges)
		if err != nil {
			return false, err
		}
		b = catalog.Batch{First: changes[0].Seq, Last: changes[len(changes)-1].Seq}
		if err := src.BeginBatch(ctx, b); err != nil {
			return false, err
		}
	}
	if len(changes) == 0 {
		// The recorded batch's changes were acked but the record stayed:
		// just forget it.
		return false, src.AckBatch(ctx, b)
	}
	ev := New(p.opts.Instance, src.ID(), changes, time.Now())
	if err := p.publish(ctx, src.ID(), ev); err != nil {
		return false, err
	}
	if err := src.AckBatch(context.WithoutCancel(ctx), b); err != nil {
		return false, err
	}
	now := time.Now()
	for _, c := range changes {
		p.m.changes.WithLabelValues(src.ID(), c.Op.String()).Inc()
		p.m.latency.Observe(now.Sub(c.At).Seconds())
	}
	p.m.events.WithLabelValues(src.ID()).Inc()
	p.log.Info("published", "source", src.ID(), "id", ev.ID, "changes", len(changes),
		"firstSeq", b.First, "lastSeq", b.Last)
	if p.opts.OnPublish != nil {
		p.opts.OnPublish(ev)
	}
	return false, nil
}

func within(changes []catalog.Change, b catalog.Batch) []catalog.Change {
	n := 0
	for _, c := range changes {
		if c.Seq >= b.First && c.Seq <= b.Last {
			changes[n] = c
			n++
		}
	}
	return changes[:n]
}

// publish sends ev until JetStream acknowledges it or ctx ends, backing off
// between attempts. NATS being away is the normal case here, not an error
// to give up on: the outbox holds everything meanwhile.
func (p *Publisher) publish(ctx context.Context, sourceID string, ev CloudEvent) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	msg := nats.NewMsg(Subject(p.opts.SubjectPrefix, sourceID))
	msg.Data = body
	msg.Header.Set("Content-Type", ContentType)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.js.PublishMsg(actx, msg, jetstream.WithMsgID(ev.ID), jetstream.WithExpectStream(p.opts.Stream))
		cancel()
		if err == nil {
			p.setHealth(sourceID, nil)
			return nil
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			// Stream deleted or never created (NATS restarted empty).
			if serr := p.EnsureStream(ctx); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		p.setHealth(sourceID, err)
		p.m.errors.WithLabelValues(sourceID).Inc()
		if attempt == 1 || attempt%10 == 0 {
			p.log.Warn("publish failed; retrying", "source", sourceID, "id", ev.ID, "attempt", attempt, "err", err)
		}
		if !p.sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (p *Publisher) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
