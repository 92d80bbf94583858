package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/imgly/syncer/internal/retry"
)

// Consumer is the one notification loop every queue transport runs (the
// kernel): Concurrency loops each receive a batch from the Driver, parse it,
// apply its events with one Apply (retried message by message when that
// fails, see ApplyEach), and acknowledge each message only after its events
// were applied. While a batch is worked on its visibility is extended every
// Heartbeat; a failed receive backs off (jittered); when Run's context ends
// the batches in hand are finished within Grace.
type Consumer struct {
	cfg ConsumerConfig
	in  *Intake
}

// NewConsumer checks cfg and returns its Consumer. It makes no request.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Driver == nil || cfg.Parse == nil || cfg.App == nil || cfg.Intake == nil {
		return nil, errors.New("notification consumer: driver, parser, applier and intake are required")
	}
	cfg.defaults()
	return &Consumer{cfg: cfg, in: cfg.Intake}, nil
}

// Run opens the driver and consumes until ctx ends, then finishes the
// batches in hand and returns nil. It returns an error when the queue cannot
// be used at all (missing, access denied): at start, or whenever a receive
// says so.
func (c *Consumer) Run(ctx context.Context) error {
	defer func() { _ = c.cfg.Driver.Close() }()
	if err := c.cfg.Driver.Open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	loopCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range c.cfg.Concurrency {
		wg.Go(func() {
			if err := c.loop(loopCtx); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(loopCtx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// loop is one receive loop.
func (c *Consumer) loop(ctx context.Context) error {
	failures := c.cfg.ReceiveBackoff.Start()
	idle := c.cfg.Idle.start()
	for ctx.Err() == nil {
		msgs, err := c.cfg.Driver.Receive(ctx, c.cfg.Batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if c.cfg.Driver.Fatal(err) {
				return err
			}
			c.in.T.Error("receive")
			wait := failures.Next()
			c.in.Log.WarnContext(ctx, "notification receive failed; retrying", "err", err, "backoff", wait)
			if !retry.Sleep(ctx, wait) {
				return nil
			}
			continue
		}
		failures.Reset()
		if len(msgs) == 0 {
			if !idle.wait(ctx) {
				return nil
			}
			continue
		}
		idle.busy()
		c.handle(ctx, msgs)
	}
	return nil
}

// pending is a received message on its way through a batch.
type pending struct {
	m      *Message
	events []Event
	ack    bool
}

func (p *pending) attrs() []any { return []any{"message_id", p.m.ID, "deliveries", p.m.Deliveries} }

// handle works through one batch. Its context outlives ctx by Grace, so that
// a batch in hand is finished rather than abandoned half applied.
func (c *Consumer) handle(ctx context.Context, msgs []*Message) {
	work, cancel := Detach(ctx, c.cfg.Grace)
	defer cancel()
	if c.cfg.WorkLimit > 0 {
		var stop context.CancelFunc
		work, stop = context.WithTimeout(work, c.cfg.WorkLimit)
		defer stop()
	}
	stopHeartbeat := c.heartbeat(work, msgs)
	items := c.prepare(work, msgs)
	c.apply(work, items)
	stopHeartbeat()

	var acks, nacks []*Message
	for _, it := range items {
		switch {
		case it.ack:
			acks = append(acks, it.m)
		case it.events != nil:
			nacks = append(nacks, it.m)
		}
	}
	if len(acks) > 0 {
		if err := c.cfg.Driver.Ack(work, acks); err != nil {
			c.in.T.Error("ack")
			c.in.Log.WarnContext(work, "notification ack failed; the messages will be delivered again",
				"err", err, "messages", len(acks))
		}
	}
	if len(nacks) > 0 {
		if c.cfg.NackDelay > 0 && ctx.Err() == nil {
			retry.Sleep(ctx, c.cfg.NackDelay)
		}
		if err := c.cfg.Driver.Nack(work, nacks); err != nil {
			c.in.T.Error("nack")
			c.in.Log.DebugContext(work, "notification nack failed", "err", err, "messages", len(nacks))
		}
	}
}

// prepare dead-letters, parses and counts each message of a batch.
func (c *Consumer) prepare(ctx context.Context, msgs []*Message) []*pending {
	items := make([]*pending, 0, len(msgs))
	dl, canDL := c.cfg.Driver.(DeadLetterer)
	for _, m := range msgs {
		it := &pending{m: m}
		c.in.T.Received()
		if canDL && c.cfg.MaxDeliveries > 0 && m.Deliveries > c.cfg.MaxDeliveries {
			c.deadLetter(ctx, dl, it)
			continue // acknowledged once moved; else it stays, to be tried again
		}
		items = append(items, it)
		p, err := c.cfg.Parse(m)
		if err != nil {
			c.in.Refused(ctx, DeliveryMalformed, err, m.Body, it.attrs()...)
			it.ack = true
			continue
		}
		it.events = c.in.Take(ctx, p, it.attrs()...)
		for i := range it.events {
			if it.events[i].ID == "" {
				it.events[i].ID = m.ID
			}
		}
		it.ack = len(it.events) == 0
		if it.ack {
			it.events = nil
		}
	}
	return items
}

// apply applies the batch's messages (one Apply, then one per message if
// that failed) and marks each one applied or failed.
func (c *Consumer) apply(ctx context.Context, items []*pending) {
	var with []*pending
	var evs [][]Event
	for _, it := range items {
		if len(it.events) > 0 {
			with = append(with, it)
			evs = append(evs, it.events)
		}
	}
	if len(with) == 0 {
		return
	}
	for i, err := range ApplyEach(c.in.T.Context(ctx), c.cfg.App, evs) {
		it := with[i]
		if err != nil {
			c.in.Failed(ctx, it.events, err, c.cfg.FailedHint, it.attrs()...)
			continue
		}
		it.ack = true
		c.in.Deliver(DeliveryApplied)
	}
}

// deadLetter moves a message delivered too often to the dead-letter path
// and acknowledges it; when the move fails the message stays.
func (c *Consumer) deadLetter(ctx context.Context, dl DeadLetterer, it *pending) {
	if err := dl.DeadLetter(ctx, it.m); err != nil {
		c.in.T.Error("dead_letter")
		c.in.Log.WarnContext(ctx, "notification not moved to the dead-letter queue; it stays",
			append(it.attrs(), "err", err)...)
		return
	}
	c.in.Deliver(DeliveryDeadLettered)
	c.in.T.Count(OutcomeDeadLettered, 1)
	c.in.Log.WarnContext(ctx, "notification moved to the dead-letter queue after too many deliveries",
		append(it.attrs(), "max_deliveries", c.cfg.MaxDeliveries)...)
	if err := c.cfg.Driver.Ack(ctx, []*Message{it.m}); err != nil {
		c.in.T.Error("ack")
		c.in.Log.WarnContext(ctx, "dead-lettered notification not removed from the queue", append(it.attrs(), "err", err)...)
	}
}

// heartbeat extends the batch's visibility every Heartbeat until the
// returned function is called, which waits for an extension under way to
// finish rather than cancel it: a cancelled renewal may have been made by
// the service all the same, and the receipt it returned (Storage Queues
// renew the pop receipt) is what the acknowledgement needs.
func (c *Consumer) heartbeat(ctx context.Context, msgs []*Message) (stop func()) {
	if c.cfg.Heartbeat <= 0 {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := c.cfg.Driver.Extend(ctx, msgs); err != nil && ctx.Err() == nil {
				c.in.T.Error("extend")
				c.in.Log.WarnContext(ctx, "notification visibility not extended; it may be redelivered",
					"err", err, "messages", len(msgs))
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// LastMessageAt is when the last message was received; zero before the
// first.
func (c *Consumer) LastMessageAt() time.Time { return c.in.LastMessageAt() }

// Tally is the consumer's in-process count of deliveries and events.
func (c *Consumer) Tally() *Tally { return c.in.Tally }

// FatalError wraps an error retrying will not cure, for drivers whose SDK
// has no typed error for it.
func FatalError(what string, err error) error { return &fatalError{what: what, err: err} }

type fatalError struct {
	what string
	err  error
}

func (e *fatalError) Error() string { return fmt.Sprintf("%s: %v", e.what, e.err) }
func (e *fatalError) Unwrap() error { return e.err }

// IsFatal reports whether err was made by FatalError.
func IsFatal(err error) bool {
	var fe *fatalError
	return errors.As(err, &fe)
}
