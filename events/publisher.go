package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/config"
)

// Outbox is what the publisher needs of one source's catalog.
type Outbox interface {
	ID() string
	// Outbox returns up to limit unpublished changes with Seq >= from, in
	// order.
	Outbox(ctx context.Context, from uint64, limit int) ([]catalog.Change, error)
	// Ack removes the changes with Seq <= through: they are published.
	Ack(ctx context.Context, through uint64) error
	// LastSeq is the sequence number of the latest change committed.
	LastSeq(ctx context.Context) (uint64, error)
	// Wait receives after a commit added outbox records.
	Wait() <-chan struct{}
}

// Options configure a Publisher.
type Options struct {
	Stream        string
	SubjectPrefix string
	// Domain is the JetStream domain ("" for the account's own).
	Domain string
	// Replicas of the stream EnsureStream creates (default 1).
	Replicas int
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
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	log  *slog.Logger
	m    metrics

	// maxMsgSize is the stream's max_msg_size as last read (0: none or
	// not known); rejected the size below which the last event
	// rejected as too big was. Both bound events besides the server's
	// max_payload.
	maxMsgSize atomic.Int64
	rejected   atomic.Int64

	mu      sync.Mutex
	healthy map[string]error
	running map[string]*outbox // the outboxes Run publishes, by source
}

type metrics struct {
	events  *prometheus.CounterVec
	changes *prometheus.CounterVec
	errors  *prometheus.CounterVec
	dropped *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewPublisher returns a publisher over an established NATS connection.
func NewPublisher(nc *nats.Conn, opts Options) (*Publisher, error) {
	var js jetstream.JetStream
	var err error
	if opts.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, opts.Domain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if opts.MaxChanges < 1 {
		opts.MaxChanges = config.DefaultMaxChanges
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Replicas < 1 {
		opts.Replicas = 1
	}
	p := &Publisher{nc: nc, js: js, opts: opts, log: opts.Log, healthy: map[string]error{}, running: map[string]*outbox{}}
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
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncer_events_dropped_total",
			Help: "Changes left out of their event, named in its skipped list instead, by reason (too_large: too big for NATS even alone).",
		}, []string{"source", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "syncer_change_publish_latency_seconds",
			Help:    "Time from a change's commit to its event's JetStream ack.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{p.m.events, p.m.changes, p.m.errors, p.m.dropped, p.m.latency} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register publisher metrics: %w", err)
			}
		}
	}
	return p, nil
}

// ErrStreamUnusable marks an EnsureStream error that retrying does not fix:
// the stream is configured so that syncer's events cannot go to it.
var ErrStreamUnusable = errors.New("stream unusable")

// JetStream error codes (nats-server's JSStreamSubjectOverlapErr and
// JSStreamMessageExceedsMaximumErr).
const (
	codeSubjectOverlap = 10065
	codeMsgTooBig      = 10054
)

// EnsureStream creates the stream if it is missing. An existing stream is
// left as its owner configured it, but checked: its subjects must cover
// syncer's, and it must not reject events once full (discard new with
// limits); otherwise the error wraps ErrStreamUnusable and names the
// stream and what is wrong. A foreign stream owning the subjects is
// named likewise.
func (p *Publisher) EnsureStream(ctx context.Context) error {
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if err == nil {
		return p.checkStream(s.CachedInfo())
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", p.opts.Stream, err)
	}
	subject := p.opts.SubjectPrefix + ".>"
	_, err = p.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        p.opts.Stream,
		Description: "syncer contents-changed events",
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    p.opts.Replicas,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  5 * time.Minute,
	})
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		p.maxMsgSize.Store(0)
		return nil
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		// Created meanwhile by someone else: check theirs.
		if s, err = p.js.Stream(ctx, p.opts.Stream); err != nil {
			return fmt.Errorf("look up stream %s: %w", p.opts.Stream, err)
		}
		return p.checkStream(s.CachedInfo())
	case errors.As(err, &apiErr) && apiErr.ErrorCode == codeSubjectOverlap:
		owner, lerr := p.js.StreamNameBySubject(ctx, subject)
		if lerr != nil {
			owner = "another stream"
		} else {
			owner = "stream " + owner
		}
		return fmt.Errorf("%w: create stream %s: syncer's subjects %s are already taken by %s; set nats.stream to it, or give syncer a nats.subjectPrefix of its own: %v",
			ErrStreamUnusable, p.opts.Stream, subject, owner, err)
	}
	return fmt.Errorf("create stream %s: %w", p.opts.Stream, err)
}

// checkStream checks an existing stream and notes its message size limit.
func (p *Publisher) checkStream(info *jetstream.StreamInfo) error {
	cfg := info.Config
	subject := p.opts.SubjectPrefix + ".>"
	covered := false
	for _, f := range cfg.Subjects {
		if subjectCovers(f, subject) {
			covered = true
		}
	}
	if !covered {
		return fmt.Errorf("%w: stream %s exists with subjects %v, which do not cover syncer's subjects %s; add them to the stream or set nats.stream/nats.subjectPrefix",
			ErrStreamUnusable, cfg.Name, cfg.Subjects, subject)
	}
	if cfg.Discard == jetstream.DiscardNew && (cfg.MaxMsgs > 0 || cfg.MaxBytes > 0 || cfg.MaxMsgsPerSubject > 0) {
		return fmt.Errorf("%w: stream %s has discard: new with limits (max_msgs %d, max_bytes %d, max_msgs_per_subject %d): once full it rejects every event and syncer's sources stop; use discard: old or no count/byte limits (max_age is fine)",
			ErrStreamUnusable, cfg.Name, cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxMsgsPerSubject)
	}
	p.maxMsgSize.Store(int64(max(cfg.MaxMsgSize, 0)))
	return nil
}

// subjectCovers says whether every subject subject matches also matches
// filter (both may hold wildcards).
func subjectCovers(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, ft := range f {
		if ft == ">" {
			return i < len(s)
		}
		if i >= len(s) {
			return false
		}
		switch {
		case s[i] == ">":
			return false // subject's rest is wider than one token
		case ft == "*":
		case ft != s[i]:
			return false
		}
	}
	return len(f) == len(s)
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

// Published returns the sequence number of the last change of source id
// that JetStream acknowledged, and whether it is known: it is not before Run
// has read back from the stream what it already holds.
func (p *Publisher) Published(id string) (uint64, bool) {
	p.mu.Lock()
	o := p.running[id]
	p.mu.Unlock()
	if o == nil {
		return 0, false
	}
	seq := o.published.Load()
	return seq, seq > 0
}

// SourceHealth returns the last publish error of source id (nil when its
// last attempt succeeded or none was made).
func (p *Publisher) SourceHealth(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.healthy[id]
}

func (p *Publisher) setHealth(id string, err error) {
	p.mu.Lock()
	p.healthy[id] = err
	p.mu.Unlock()
}

// publish sends b's event until JetStream acknowledges it or ctx ends.
func (p *Publisher) publish(ctx context.Context, o *outbox, b *batch) error {
	sourceID := o.src.ID()
	msg, err := p.messageOf(sourceID, b)
	if err != nil {
		return err
	}
	return p.retry(ctx, sourceID, "publish failed; retrying", func() error {
		for {
			pubOpts, err := p.fenceOpts(o)
			if err != nil {
				return err
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ack, err := p.js.PublishMsg(actx, msg, append(pubOpts, jetstream.WithMsgID(b.ev.ID), jetstream.WithExpectStream(p.opts.Stream))...)
			cancel()
			err = p.fenceAcked(o, ack, err)
			first := !b.tried
			b.tried = true
			if err == nil && ack.Duplicate && first && o.restored {
				// A duplicate ack usually means the event is already in
				// the stream (an attempt before a restart landed). After
				// a restore, though, the stream may hold another event
				// under this id — the catalog's lost future, within the
				// duplicate window — so the event gets an id of its own
				// rather than being dropped.
				b.ev.ID += "." + strconv.FormatInt(time.Now().UnixNano(), 36)
				p.log.Warn("event id already taken in the stream after a restore; publishing under a new id",
					"source", sourceID, "id", b.ev.ID)
				b.tried, b.body = false, nil
				if msg, err = p.message(sourceID, b.ev); err != nil {
					return err
				}
				continue
			}
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
				// Stream deleted or never created (NATS restarted empty).
				if serr := p.EnsureStream(ctx); serr != nil {
					err = errors.Join(err, serr)
				}
			}
			if err != nil {
				return fmt.Errorf("publish %s: %w", b.ev.ID, err)
			}
			return nil
		}
	})
}

// messageOf is b's message, from the encoding cut measured if it kept one.
func (p *Publisher) messageOf(sourceID string, b *batch) (*nats.Msg, error) {
	if b.body == nil {
		return p.message(sourceID, b.ev)
	}
	return p.newMessage(sourceID, b.body), nil
}

func (p *Publisher) message(sourceID string, ev CloudEvent) (*nats.Msg, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return p.newMessage(sourceID, body), nil
}

func (p *Publisher) newMessage(sourceID string, body []byte) *nats.Msg {
	msg := nats.NewMsg(Subject(p.opts.SubjectPrefix, sourceID))
	msg.Data = body
	msg.Header.Set("Content-Type", ContentType)
	return msg
}

// gather applies the coalescing window on its leading edge: a change that
// finds the source quiet (no event published within the window) goes out
// at once; changes arriving within the window after an event are gathered
// and go out together when it ends, or as soon as maxChanges are pending.
// So an isolated change waits for nothing, and no change waits longer than
// one window: a burst costs one event per window it lasts, plus the first.
// (Stretching the window while changes keep coming cut a burst's events but
// made a steady stream's changes wait several windows — the window is the
// bound users set, so it stays the bound.) It returns the pending changes
// then (nil when ctx ended).
func (p *Publisher) gather(ctx context.Context, o *outbox, changes []catalog.Change) ([]catalog.Change, error) {
	wait := time.Until(o.lastPublish.Add(p.opts.Window))
	if wait <= 0 {
		return changes, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	from := changes[0].Seq
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
			return o.src.Outbox(ctx, from, p.opts.MaxChanges)
		case <-o.src.Wait():
			more, err := o.src.Outbox(ctx, from, p.opts.MaxChanges)
			if err != nil || len(more) >= p.opts.MaxChanges {
				return more, err
			}
		}
	}
}
