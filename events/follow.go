package events

import (
	"context"
	"errors"
	"time"
)

// followAckEvery is how often Follow drops published changes from the
// outbox while its writer still commits. Each drop is a write transaction
// and an fsync the writer's next commit may wait for, so they are rare; the
// publisher is usually caught up when one runs, and a drop covering the
// whole outbox replaces the bucket instead of deleting record by record.
const followAckEvery = time.Second

// Follow publishes src's changes as they are committed, without coalescing
// delays, until done is closed; then it publishes what the outbox still
// holds, drops the published changes from it and returns. It is what
// `syncer scan` runs beside its scan, so that once the listing ends only the
// last batch is left to publish instead of the whole import.
//
// Publishing is retried while NATS is away, until ctx ends (the caller
// bounds the time it grants after done); what is not published stays in the
// outbox for the next run. Whatever was published is dropped from the
// outbox in every case.
func (p *Publisher) Follow(ctx context.Context, src Outbox, done <-chan struct{}) error {
	o := newOutbox(src)
	err := p.follow(ctx, o, done)
	// Acked even when the publishing failed or ran out of time: what
	// JetStream acknowledged need not be published again.
	return errors.Join(err, p.ackPublished(context.WithoutCancel(ctx), o))
}

// follow is Follow's loop: publish while there is something, wait for the
// next commit otherwise, and drain once done is closed.
func (p *Publisher) follow(ctx context.Context, o *outbox, done <-chan struct{}) error {
	// Asked for before the first read, so that a commit between that read
	// and the first wait still wakes the loop.
	wake := o.src.Wait()
	acks := time.NewTicker(followAckEvery)
	defer acks.Stop()
	for {
		idle, err := p.step(ctx, o, false)
		if err != nil {
			return err
		}
		if !idle {
			select {
			case <-acks.C:
				if err := p.ackPublished(ctx, o); err != nil {
					return err
				}
			default:
			}
			continue
		}
		select {
		case <-done:
			// Commits made after the last read are published here.
			return p.drain(ctx, o)
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-acks.C:
			if err := p.ackPublished(ctx, o); err != nil {
				return err
			}
		}
	}
}
