package notifytest

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"

	"github.com/imgly/syncer/notify"
)

// A Broken driver wraps a working one and breaks it the way one case of the
// suite is there to catch; Cases names the cases that must fail against it.
// A transport's meta-test runs each case against its driver so wrapped and
// checks that it fails, so that the suite is known to be able to fail.
type Broken struct {
	Wrap  func(notify.Driver) notify.Driver
	Cases []string
}

// BrokenDrivers are the deliberately broken drivers.
var BrokenDrivers = map[string]Broken{
	// Acknowledges what it receives at once, before anything is applied.
	"acks-on-receive": {func(d notify.Driver) notify.Driver { return &acksOnReceive{wrapped{d}} },
		[]string{"AckAfterApply", "FailedApplyRedelivered", "Poison"}},
	// Acknowledges what it is told to give back.
	"nack-acks": {func(d notify.Driver) notify.Driver { return &nackAcks{wrapped{d}} },
		[]string{"FailedApplyRedelivered", "Poison"}},
	// Acknowledges with the receive's context, which ends with shutdown:
	// the batch in hand is not acknowledged.
	"acks-with-receive-ctx": {func(d notify.Driver) notify.Driver { return &acksWithReceiveCtx{wrapped: wrapped{d}} },
		[]string{"ShutdownFinishesInFlight"}},
	// Retries a missing queue for ever.
	"missing-retried": {func(d notify.Driver) notify.Driver { return &neverFatal{wrapped{d}} },
		[]string{"MissingQueue"}},
	// Drops events of other buckets itself, uncounted (the old S3 and GCS
	// policy), instead of leaving them to the Router.
	"drops-foreign": {func(d notify.Driver) notify.Driver { return &dropsMatching{wrapped: wrapped{d}, what: "other-bucket"} },
		[]string{"ForeignAndOutsidePrefix"}},
	// Swallows a second delivery of the same body, uncounted.
	"swallows-duplicates": {func(d notify.Driver) notify.Driver { return &dropsMatching{wrapped: wrapped{d}, dups: true} },
		[]string{"Duplicate"}},
}

// wrapped passes everything on, dead-lettering included.
type wrapped struct{ notify.Driver }

func (w wrapped) DeadLetter(ctx context.Context, m *notify.Message) error {
	if dl, ok := w.Driver.(notify.DeadLetterer); ok {
		return dl.DeadLetter(ctx, m)
	}
	return errors.New("notifytest: no dead-letter path")
}

type acksOnReceive struct{ wrapped }

func (d *acksOnReceive) Receive(ctx context.Context, max int) ([]*notify.Message, error) {
	msgs, err := d.Driver.Receive(ctx, max)
	if len(msgs) > 0 {
		_ = d.Driver.Ack(ctx, msgs)
	}
	return msgs, err
}

func (d *acksOnReceive) Ack(context.Context, []*notify.Message) error  { return nil }
func (d *acksOnReceive) Nack(context.Context, []*notify.Message) error { return nil }

type nackAcks struct{ wrapped }

func (d *nackAcks) Nack(ctx context.Context, msgs []*notify.Message) error {
	return d.Driver.Ack(ctx, msgs)
}

type acksWithReceiveCtx struct {
	wrapped
	mu  sync.Mutex
	ctx context.Context
}

func (d *acksWithReceiveCtx) Receive(ctx context.Context, max int) ([]*notify.Message, error) {
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	return d.Driver.Receive(ctx, max)
}

func (d *acksWithReceiveCtx) Ack(_ context.Context, msgs []*notify.Message) error {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // what a driver using a cancelled context gets
	}
	return d.Driver.Ack(ctx, msgs)
}

type neverFatal struct{ wrapped }

func (neverFatal) Fatal(error) bool { return false }

// dropsMatching acknowledges and hides the messages whose body contains
// what (or, with dups, that repeat an earlier body).
type dropsMatching struct {
	wrapped
	what string
	dups bool
	mu   sync.Mutex
	seen map[string]bool
}

func (d *dropsMatching) Receive(ctx context.Context, max int) ([]*notify.Message, error) {
	msgs, err := d.Driver.Receive(ctx, max)
	var keep, drop []*notify.Message
	for _, m := range msgs {
		if d.drop(m) {
			drop = append(drop, m)
		} else {
			keep = append(keep, m)
		}
	}
	if len(drop) > 0 {
		_ = d.Driver.Ack(ctx, drop)
	}
	return keep, err
}

func (d *dropsMatching) drop(m *notify.Message) bool {
	body := string(m.Body) + decoded(m.Body)
	if !d.dups {
		return strings.Contains(body, d.what)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	dup := d.seen[body]
	d.seen[body] = true
	return dup
}

// decoded is body base64-decoded (Storage Queue messages), or "".
func decoded(body []byte) string {
	b, err := base64.StdEncoding.DecodeString(string(body))
	if err != nil {
		return ""
	}
	return string(b)
}
