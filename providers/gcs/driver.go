package gcs

import (
	"context"
	"fmt"
	"sync"

	"cloud.google.com/go/pubsub/v2"

	"github.com/imgly/syncer/notify"
)

// pubsubDriver fits Pub/Sub's push-style streaming pull to the kernel's
// receive loop: each message the client library hands to the callback is
// passed on to a Receive, and the callback waits until the kernel acks or
// nacks it. So flow control (MaxOutstandingMessages), lease extension and
// the library's wait for callbacks at shutdown keep working, while the
// policy (batching, ack after apply, nack delay, grace) is the kernel's.
type pubsubDriver struct {
	sub  *pubsub.Subscriber
	name string // "receive from <subscription>", for errors

	in     chan *pubsubHandle // unbuffered: no message waits outside a callback
	done   chan struct{}      // closed when the stream ended; err is then set
	err    error
	cancel context.CancelFunc
	once   sync.Once
}

var _ notify.Driver = (*pubsubDriver)(nil)

// pubsubHandle is a message in hand; settled ends its callback.
type pubsubHandle struct {
	m       *pubsub.Message
	settled chan struct{}
}

// Open starts the stream. It ends when ctx does (or Close is called), after
// the callbacks in hand returned.
func (d *pubsubDriver) Open(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	d.in, d.done, d.cancel = make(chan *pubsubHandle), make(chan struct{}), cancel
	go func() {
		defer close(d.done)
		if err := d.sub.Receive(sctx, d.callback); err != nil {
			d.err = fmt.Errorf("%s: %w", d.name, err)
		}
	}()
	return nil
}

func (d *pubsubDriver) callback(ctx context.Context, m *pubsub.Message) {
	h := &pubsubHandle{m: m, settled: make(chan struct{})}
	select {
	case d.in <- h:
		<-h.settled
	case <-ctx.Done():
		m.Nack()
	}
}

// Receive waits for a message, then takes what else is waiting, up to max.
func (d *pubsubDriver) Receive(ctx context.Context, max int) ([]*notify.Message, error) {
	var msgs []*notify.Message
	select {
	case h := <-d.in:
		msgs = append(msgs, message(h))
	case <-d.done:
		return nil, d.err // nil: the stream ended with ctx
	case <-ctx.Done():
		return nil, nil
	}
	for len(msgs) < max {
		select {
		case h := <-d.in:
			msgs = append(msgs, message(h))
		default:
			return msgs, nil
		}
	}
	return msgs, nil
}

func message(h *pubsubHandle) *notify.Message {
	m := &notify.Message{ID: h.m.ID, Body: h.m.Data, Attributes: h.m.Attributes, Handle: h}
	if h.m.DeliveryAttempt != nil {
		m.Deliveries = int64(*h.m.DeliveryAttempt)
	}
	return m
}

func (d *pubsubDriver) Ack(_ context.Context, msgs []*notify.Message) error {
	settle(msgs, (*pubsub.Message).Ack)
	return nil
}

func (d *pubsubDriver) Nack(_ context.Context, msgs []*notify.Message) error {
	settle(msgs, (*pubsub.Message).Nack)
	return nil
}

// settle acks or nacks each message and ends its callback.
func settle(msgs []*notify.Message, how func(*pubsub.Message)) {
	for _, m := range msgs {
		h := m.Handle.(*pubsubHandle)
		how(h.m)
		close(h.settled)
	}
}

// Extend does nothing: the client library extends the leases itself.
func (d *pubsubDriver) Extend(context.Context, []*notify.Message) error { return nil }

// Fatal: the stream only ends with an error retrying will not cure
// (missing subscription, no permission); the library retries the rest.
func (d *pubsubDriver) Fatal(error) bool { return true }

// Close ends the stream and waits for it.
func (d *pubsubDriver) Close() error {
	d.once.Do(func() {
		if d.cancel != nil {
			d.cancel()
			<-d.done
		}
	})
	return nil
}
