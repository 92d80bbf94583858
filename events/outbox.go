package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imgly/syncer/catalog"
	"github.com/imgly/syncer/internal/retry"
)

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
