package azure

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/queueerror"

	"github.com/imgly/syncer/notify"
)

// queueDriver is a Storage Queue as a notify.Driver. A nack does nothing:
// the message reappears when its visibility timeout lapses; a message
// dequeued too often goes to the poison queue (DeadLetter).
type queueDriver struct {
	queue, poison *azqueue.QueueClient
	queueName     string
	vt            time.Duration
	// callTimeout bounds each queue call: the source's requestTimeout. A
	// stalled connection then fails one call instead of the consumer.
	callTimeout time.Duration
}

var (
	_ notify.Driver       = (*queueDriver)(nil)
	_ notify.DeadLetterer = (*queueDriver)(nil)
)

// receipt is a message's handle: the pop receipt changes with every
// visibility renewal (renewals and the delete never run at once: the kernel
// stops the heartbeat before it acknowledges).
type receipt struct {
	id, pop, text string
	lost          bool // another consumer took it over: stop renewing
}

func (d *queueDriver) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.callTimeout)
}

// Open makes no request: a missing queue fails the first dequeue.
func (d *queueDriver) Open(context.Context) error { return nil }

func (d *queueDriver) Close() error { return nil }

func (d *queueDriver) Receive(ctx context.Context, max int) ([]*notify.Message, error) {
	n, vtSec := int32(max), int32(d.vt/time.Second)
	dctx, cancel := d.call(ctx)
	defer cancel()
	resp, err := d.queue.DequeueMessages(dctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vtSec})
	if err != nil {
		return nil, fmt.Errorf("azure queue %s: dequeue: %w", d.queueName, redact(err))
	}
	msgs := make([]*notify.Message, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		if m == nil || m.MessageID == nil || m.PopReceipt == nil {
			continue
		}
		r := &receipt{id: *m.MessageID, pop: *m.PopReceipt}
		if m.MessageText != nil {
			r.text = *m.MessageText
		}
		msg := &notify.Message{ID: r.id, Body: []byte(r.text), Handle: r}
		if m.DequeueCount != nil {
			msg.Deliveries = *m.DequeueCount
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// Ack deletes the messages. Storage Queues delete one message per request:
// in parallel, so a batch of 32 costs about one round trip, not 32.
func (d *queueDriver) Ack(ctx context.Context, msgs []*notify.Message) error {
	return d.each(msgs, func(r *receipt) error {
		dctx, cancel := d.call(ctx)
		defer cancel()
		_, err := d.queue.DeleteMessage(dctx, r.id, r.pop, nil)
		return err
	})
}

func (d *queueDriver) Nack(context.Context, []*notify.Message) error { return nil }

// Extend renews the messages' visibility timeout, keeping the new pop
// receipts.
func (d *queueDriver) Extend(ctx context.Context, msgs []*notify.Message) error {
	vtSec := int32(d.vt / time.Second)
	return d.each(msgs, func(r *receipt) error {
		if r.lost {
			return nil
		}
		uctx, cancel := d.call(ctx)
		defer cancel()
		resp, err := d.queue.UpdateMessage(uctx, r.id, r.pop, r.text, &azqueue.UpdateMessageOptions{VisibilityTimeout: &vtSec})
		if err != nil {
			r.lost = goneError(redact(err))
			return err
		}
		if resp.PopReceipt != nil {
			r.pop = *resp.PopReceipt
		}
		return nil
	})
}

// each runs fn for every message's receipt, eight at a time, and joins the
// errors (redacted: a SAS must not reach a log).
func (d *queueDriver) each(msgs []*notify.Message, fn func(*receipt) error) error {
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, m := range msgs {
		r := m.Handle.(*receipt)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(r); err != nil {
				errs[i] = fmt.Errorf("azure queue message %s: %w", r.id, redact(err))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DeadLetter copies the message to the poison queue, creating it on first
// use; its copy never expires there (someone has to look at it).
func (d *queueDriver) DeadLetter(ctx context.Context, m *notify.Message) error {
	r := m.Handle.(*receipt)
	ttl := int32(-1)
	enqueue := func() error {
		ectx, cancel := d.call(ctx)
		defer cancel()
		_, err := d.poison.EnqueueMessage(ectx, r.text, &azqueue.EnqueueMessageOptions{TimeToLive: &ttl})
		return err
	}
	err := enqueue()
	if err != nil && queueMissing(err) {
		if _, cerr := d.poison.Create(ctx, nil); cerr == nil || queueerror.HasCode(cerr, queueerror.QueueAlreadyExists) {
			err = enqueue()
		}
	}
	if err != nil {
		return fmt.Errorf("azure poison queue: %w", redact(err))
	}
	return nil
}

// Fatal: the queue is missing or access is denied.
func (d *queueDriver) Fatal(err error) bool { return fatalQueueError(err) }
