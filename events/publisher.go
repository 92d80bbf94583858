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
	"github.com/imgly/syncer/internal/retry"
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

// outbox is the publisher's state of one source.
type outbox struct {
	src Outbox
	// resumed is set once next is known: the stream has told which of
	// the source's changes it already holds.
	resumed bool
	// next is the first change not yet published.
	next uint64
	// restored is set when resume found the catalog restored from a
	// backup: its sequence numbers, and so event ids, may repeat ones the
	// stream holds.
	restored bool
	// unsent is an event whose publish failed: it is sent again as it
	// is before anything else, so that if the failed attempt did reach
	// the stream, JetStream drops the retry as a duplicate.
	unsent *batch
	// subjSeq is the stream sequence of the subject's last message, for
	// a fenced source's expected-last-subject-sequence (fence.go).
	subjSeq uint64
	// published is the last change JetStream acknowledged; acked the
	// last the catalog's outbox dropped. Acks trail publishes, in the
	// background.
	published atomic.Uint64
	acked     uint64
	ackKick   chan struct{}
	// lastPublish is when the last event was acknowledged: the coalescing
	// window runs from it (see gather).
	lastPublish time.Time
}

// batch is an event and the changes of its range, listed or skipped.
type batch struct {
	ev      CloudEvent
	changes []catalog.Change
	// skip are the seqs of changes too big to publish even alone.
	skip map[uint64]bool
	// tried is set once an attempt to publish ev was made: from then on a
	// duplicate ack means an earlier attempt landed.
	tried bool
	// body is ev's JSON when cut encoded it to measure it; nil otherwise,
	// and once ev changes.
	body []byte
}

func newOutbox(src Outbox) *outbox {
	return &outbox{src: src, ackKick: make(chan struct{}, 1)}
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
			o := newOutbox(src)
			p.mu.Lock()
			p.running[src.ID()] = o
			p.mu.Unlock()
			actx, stopAcks := context.WithCancel(context.WithoutCancel(ctx))
			acksDone := make(chan struct{})
			go func() {
				defer close(acksDone)
				p.runAcks(actx, o)
			}()
			p.runSource(ctx, o)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			err := p.drain(fctx, o)
			stopAcks()
			<-acksDone
			// What was published is acked even if the flush ran out of
			// time: the acks cost one short transaction.
			err = errors.Join(err, p.ackPublished(context.WithoutCancel(fctx), o))
			if err != nil {
				p.log.Warn("outbox not flushed at shutdown; it is kept for the next start", "source", src.ID(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// Flush publishes everything src's outbox holds, without coalescing delays.
func (p *Publisher) Flush(ctx context.Context, src Outbox) error {
	o := newOutbox(src)
	return errors.Join(p.drain(ctx, o), p.ackPublished(ctx, o))
}

func (p *Publisher) drain(ctx context.Context, o *outbox) error {
	for {
		idle, err := p.step(ctx, o, false)
		if err != nil || idle {
			return err
		}
	}
}

func (p *Publisher) runSource(ctx context.Context, o *outbox) {
	// A periodic look covers a wake-up lost between a read and a wait.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	pause := pauseBackoff.Start()
	for ctx.Err() == nil {
		idle, err := p.step(ctx, o, true)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("publisher: outbox failed", "source", o.src.ID(), "err", err)
				pause.Wait(ctx)
			}
			continue
		}
		pause.Reset()
		if !idle {
			continue
		}
		select {
		case <-ctx.Done():
		case <-o.src.Wait():
		case <-tick.C:
		}
	}
}

// runAcks drops published changes from the catalog's outbox. It runs beside
// the publishing so that the next event does not wait for this write; only
// the newest published sequence number matters, so bursts of publishes
// become one ack.
func (p *Publisher) runAcks(ctx context.Context, o *outbox) {
	pause := pauseBackoff.Start()
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.ackKick:
		}
		if err := p.ackPublished(ctx, o); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("publisher: dropping published changes from the outbox failed; retrying", "source", o.src.ID(), "err", err)
			if pause.Wait(ctx) {
				o.kickAcks()
			}
			continue
		}
		pause.Reset()
	}
}

func (o *outbox) kickAcks() {
	select {
	case o.ackKick <- struct{}{}:
	default:
	}
}

// ackPublished acks what JetStream acknowledged and the outbox still holds.
// It is called by one goroutine at a time: runAcks, or its owner once
// runAcks has returned.
func (p *Publisher) ackPublished(ctx context.Context, o *outbox) error {
	through := o.published.Load()
	if through <= o.acked {
		return nil
	}
	if err := o.src.Ack(ctx, through); err != nil {
		return err
	}
	o.acked = through
	return nil
}

// resume finds where publishing left off: the stream's last event of the
// source names the last change it covers. This makes the stream, not the
// catalog, the record of what was published, so a publish costs no catalog
// write beforehand and its ack no write on the way: a crash between the two
// only leaves changes in the outbox that the stream shows as published.
func (p *Publisher) resume(ctx context.Context, o *outbox) error {
	return p.retry(ctx, o.src.ID(), "reading the last published event failed; retrying", func() error {
		last, ev, err := p.lastPublished(ctx, o.src)
		if err != nil {
			return err
		}
		if last > 0 {
			mine, err := p.linesUp(ctx, o.src, last, ev)
			if err != nil {
				return err
			}
			if !mine {
				// The stream's event is not of this catalog's changes:
				// the catalog was restored from a backup or rolled back,
				// and its sequence numbers were reused. Its outbox is
				// published from the start rather than taken as
				// published.
				p.log.Warn("the stream's last event does not match this catalog's changes (restored from a backup?); publishing the whole outbox",
					"source", o.src.ID(), "event", ev.ID)
				last, o.restored = 0, true
			}
		}
		if err := p.resumeFence(ctx, o); err != nil {
			return err
		}
		o.resumed, o.next = true, last+1
		if last > 0 {
			o.published.Store(last)
			o.kickAcks()
		}
		return nil
	})
}

// publishBackoff bounds the waits between attempts to publish: 100 ms
// doubling to 10 s, jittered so that workers that lost NATS together do not
// come back in step.
var publishBackoff = retry.Policy{Min: 100 * time.Millisecond, Max: 10 * time.Second}

// pauseBackoff bounds the waits after the outbox itself failed (reading it,
// dropping published changes, an event refused for its size even alone):
// 1–2 s. These are not NATS outages; the loops stay as prompt as the fixed
// second they used to wait, only no longer in step.
var pauseBackoff = retry.Policy{Min: time.Second, Max: 2 * time.Second}

// retry runs fn until it succeeds or ctx ends, backing off between attempts
// (publishBackoff) and reporting failures in the source's health,
// the errors metric and, on the first and every tenth attempt, the log.
// NATS being away is the normal case here, not an error to give up on: the
// outbox holds everything meanwhile.
func (p *Publisher) retry(ctx context.Context, sourceID, msg string, fn func() error) error {
	backoff := publishBackoff.Start()
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			p.setHealth(sourceID, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if tooBig(err) {
			return err // not worth retrying as it is: the caller splits
		}
		if fenceStops(err) {
			return err // retrying cannot help: see fence.go
		}
		p.setHealth(sourceID, err)
		p.m.errors.WithLabelValues(sourceID).Inc()
		if attempt == 1 || attempt%10 == 0 {
			p.log.Warn(msg, "source", sourceID, "attempt", attempt, "err", err)
		}
		if !backoff.Wait(ctx) {
			return ctx.Err()
		}
	}
}

// lastPublished returns the stream's latest event of src and the last
// change it covers; 0 when there is none of this catalog's.
func (p *Publisher) lastPublished(ctx context.Context, src Outbox) (uint64, CloudEvent, error) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := p.js.Stream(actx, p.opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, CloudEvent{}, nil // publishing creates it
	}
	if err == nil {
		// Checked here too: NATS may have been away when EnsureStream
		// ran. The source waits, the reason in its health, rather than
		// publish into a stream that cannot keep its events.
		if cerr := p.checkStream(stream.CachedInfo()); cerr != nil {
			return 0, CloudEvent{}, cerr
		}
		var msg *jetstream.RawStreamMsg
		msg, err = stream.GetLastMsgForSubject(actx, Subject(p.opts.SubjectPrefix, src.ID()))
		if err == nil {
			last, ok := parseMessageID(msg.Header.Get(jetstream.MsgIDHeader), p.opts.Instance, src.ID())
			if !ok {
				return 0, CloudEvent{}, nil
			}
			ev, derr := Decode(msg.Data)
			if derr != nil {
				// Ours by its id but not an event: nothing to line up.
				p.log.Warn("the source's last event does not decode; publishing the outbox from its start", "source", src.ID(), "err", derr)
				return 0, CloudEvent{}, nil
			}
			return last, ev, nil
		}
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, CloudEvent{}, nil
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, nats.ErrPermissionViolation) || errors.As(err, &apiErr) && apiErr.Code == 403 {
		// Not allowed to read the stream. Publishing must not wait on
		// it: the outbox is published from its start, and JetStream's
		// duplicate window drops what it already holds of the same
		// events. Other errors (no leader, timeouts) pass: retry.
		p.log.Warn("not permitted to read the source's last event; publishing the outbox from its start", "source", src.ID(), "err", err)
		return 0, CloudEvent{}, nil
	}
	return 0, CloudEvent{}, fmt.Errorf("read the last event of %s from stream %s: %w", src.ID(), p.opts.Stream, err)
}

// linesUp says whether ev, the stream's last event of src covering changes
// up to last, is of this catalog's changes. A catalog restored from a
// backup has the same instance id but reuses sequence numbers: its change
// last either does not exist yet or differs from the event's.
func (p *Publisher) linesUp(ctx context.Context, src Outbox, last uint64, ev CloudEvent) (bool, error) {
	seq, err := src.LastSeq(ctx)
	if err != nil || last > seq {
		return false, err
	}
	pending, err := src.Outbox(ctx, last, 1)
	if err != nil {
		return false, err
	}
	if len(pending) == 0 || pending[0].Seq != last {
		return true, nil // acked: this catalog published it
	}
	c := pending[0]
	for _, e := range ev.Data.Changes {
		if e.Seq == last {
			return e.Key == c.Object.Key && e.Op == c.Op.String() && e.ETag == c.Object.ETag && e.Size == c.Object.Size, nil
		}
	}
	for _, e := range ev.Data.Skipped {
		if e.Seq == last {
			return e.Op == c.Op.String() && e.KeyBytes == len(c.Object.Key), nil
		}
	}
	return false, nil
}

// step publishes one event of o's outbox. It reports idle when there was
// nothing to publish. With coalesce, it waits until the window after the
// last event has passed (or a full event is there) before cutting the
// event.
func (p *Publisher) step(ctx context.Context, o *outbox, coalesce bool) (idle bool, err error) {
	if !o.resumed {
		if err := p.resume(ctx, o); err != nil {
			return false, err
		}
	}
	b := o.unsent
	if b == nil {
		changes, err := o.src.Outbox(ctx, o.next, p.opts.MaxChanges)
		if err != nil || len(changes) == 0 {
			return err == nil, err
		}
		if coalesce && p.opts.Window > 0 && len(changes) < p.opts.MaxChanges {
			if changes, err = p.gather(ctx, o, changes); err != nil || changes == nil {
				return false, err
			}
		}
		b = p.cut(o.src.ID(), changes)
	}
	if err := p.publish(ctx, o, b); err != nil {
		if tooBig(err) {
			// Certainly not stored, so safe to send as other events:
			// halves of the range, or the change named as skipped.
			o.unsent = p.split(ctx, o.src.ID(), b, err)
			return false, nil
		}
		o.unsent = b
		if errors.Is(err, errSubjectMoved) {
			// Published by someone else meanwhile (or our own attempt
			// landed unacknowledged): start over from the stream.
			o.unsent, o.resumed = nil, false
		}
		return false, err
	}
	o.unsent = nil
	d := b.ev.Data
	o.next = d.LastSeq + 1
	o.published.Store(d.LastSeq)
	o.kickAcks()
	now := time.Now()
	o.lastPublish = now
	for _, c := range b.changes {
		p.m.latency.Observe(now.Sub(c.At).Seconds())
	}
	for _, c := range d.Changes {
		p.m.changes.WithLabelValues(o.src.ID(), c.Op).Inc()
	}
	for _, sk := range d.Skipped {
		p.m.dropped.WithLabelValues(o.src.ID(), sk.Reason).Inc()
		p.log.Error("change too large to publish even alone; the event names it in skipped instead",
			"source", o.src.ID(), "seq", sk.Seq, "op", sk.Op, "keyBytes", sk.KeyBytes, "limit", p.limit(), "id", b.ev.ID)
	}
	p.m.events.WithLabelValues(o.src.ID()).Inc()
	p.log.Info("published", "source", o.src.ID(), "id", b.ev.ID, "changes", len(d.Changes),
		"firstSeq", d.FirstSeq, "lastSeq", d.LastSeq)
	if p.opts.OnPublish != nil {
		p.opts.OnPublish(b.ev)
	}
	return false, nil
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

// headroom is what the headers of an event take besides its id, with
// room for an id suffix (see publish) and what NATS adds.
const headroom = len("NATS/1.0\r\n\r\n") +
	len("Content-Type: \r\n") + len(ContentType) +
	len("Nats-Msg-Id: \r\n") +
	len("Nats-Expected-Stream: \r\n") + 64

// limit is the largest message, headers and body, NATS takes now: the
// server's max_payload, the stream's max_msg_size and what the last
// rejection taught, whichever is least; 0 when none is known yet.
func (p *Publisher) limit() int {
	l := p.nc.MaxPayload()
	for _, v := range []int64{p.maxMsgSize.Load(), p.rejected.Load()} {
		if v > 0 && (l <= 0 || v < l) {
			l = v
		}
	}
	return int(max(l, 0))
}

// budget is what the body of an event with id may take; 0 for no bound.
func (p *Publisher) budget(id string) int {
	l := p.limit()
	if l == 0 {
		return 0
	}
	return max(l-headroom-len(id)-len(p.opts.Stream), 1)
}

// cut makes the event of the longest prefix of changes that fits the
// size limit. A change that does not fit even alone is not listed but
// named in the event's skipped list, so that the ranges of events stay
// contiguous and the source goes on.
func (p *Publisher) cut(sourceID string, changes []catalog.Change) *batch {
	full := New(p.opts.Instance, sourceID, changes, time.Now())
	budget := p.budget(full.ID)
	if budget == 0 {
		return &batch{ev: full, changes: changes}
	}
	// The encoding measured is the one published: encoding an event of
	// hundreds of changes twice was most of the publisher's CPU time.
	if body, err := json.Marshal(full); err != nil || len(body) <= budget {
		return &batch{ev: full, changes: changes, body: body}
	}
	// The envelope of the whole range: the prefix's has no more digits.
	env := full
	env.Data.Changes = []Change{}
	base := encodedLen(env)
	const skipCost = 100 // a skipped entry, generously
	total, n := base, 0
	var skip map[uint64]bool
	for i, c := range full.Data.Changes {
		size := encodedLen(c) + 1 // and a comma
		if base+size+skipCost > budget {
			if total+skipCost > budget && n > 0 {
				break
			}
			if skip == nil {
				skip = map[uint64]bool{}
			}
			skip[c.Seq] = true
			total += skipCost
		} else {
			if total+size > budget && n > 0 {
				break
			}
			total += size
		}
		n = i + 1
	}
	return p.batchOf(sourceID, changes[:n], skip)
}

// batchOf builds the event of changes, naming those in skip as skipped.
func (p *Publisher) batchOf(sourceID string, changes []catalog.Change, skip map[uint64]bool) *batch {
	ev := New(p.opts.Instance, sourceID, changes, time.Now())
	if len(skip) > 0 {
		kept := ev.Data.Changes[:0]
		for i, c := range ev.Data.Changes {
			if skip[c.Seq] {
				ev.Data.Skipped = append(ev.Data.Skipped, Skipped{
					Seq: c.Seq, Op: c.Op, KeyBytes: len(changes[i].Object.Key), Reason: ReasonTooLarge,
				})
				continue
			}
			kept = append(kept, c)
		}
		ev.Data.Changes = kept
	}
	return &batch{ev: ev, changes: changes, skip: skip}
}

// split answers a rejection of b as too big: later events are cut below
// its size, and b is replaced by the event of the first half of its
// range (the rest is cut again from the outbox), or, for a range of one,
// by the event naming that change as skipped.
func (p *Publisher) split(ctx context.Context, sourceID string, b *batch, cause error) *batch {
	if msg, err := p.messageOf(sourceID, b); err == nil {
		size := int64(len(msg.Data) + headroom + len(b.ev.ID))
		for {
			cur := p.rejected.Load()
			if cur > 0 && cur <= size-1 || p.rejected.CompareAndSwap(cur, size-1) {
				break
			}
		}
	}
	if len(b.changes) > 1 {
		half := b.changes[:len(b.changes)/2]
		p.log.Warn("event rejected as too big; publishing its range in halves", "source", sourceID, "id", b.ev.ID,
			"changes", len(b.changes), "firstSeq", b.ev.Data.FirstSeq, "lastSeq", b.ev.Data.LastSeq, "err", cause)
		return p.batchOf(sourceID, half, b.skip)
	}
	if b.skip[b.changes[0].Seq] {
		// Even the event naming the change as skipped was refused: the
		// limit is absurdly small. Keep trying rather than lose track.
		p.log.Error("event of one skipped change rejected as too big; retrying", "source", sourceID, "id", b.ev.ID, "err", cause)
		retry.Sleep(ctx, pauseBackoff.Delay(1))
		return b
	}
	return p.batchOf(sourceID, b.changes, map[uint64]bool{b.changes[0].Seq: true})
}

// tooBig says whether err is NATS or JetStream refusing a message for its
// size: the same message will never be accepted.
func tooBig(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeMsgTooBig {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "maximum payload") || strings.Contains(s, "message size exceeds maximum")
}

func encodedLen(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}
