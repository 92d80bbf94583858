package s3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imgly/syncer/notify"
)

// sqsDriver is SQS as a notify.Driver: one SDK call per method, no policy.
// A nack does nothing: the message comes back when its visibility timeout
// lapses, and the queue's redrive policy is the dead-letter path.
type sqsDriver struct {
	client      *sqs.Client
	queueURL    string
	visibility  time.Duration
	wait        time.Duration
	callTimeout time.Duration // bounds each call beyond a receive's long poll
}

var _ notify.Driver = (*sqsDriver)(nil)

// Open makes no request: a missing queue fails the first receive.
func (d *sqsDriver) Open(context.Context) error { return nil }

func (d *sqsDriver) Close() error { return nil }

func (d *sqsDriver) Receive(ctx context.Context, max int) ([]*notify.Message, error) {
	// A long poll answers within its wait; past that plus the call
	// timeout the connection has stalled, and a new receive is due.
	rctx, cancel := context.WithTimeout(ctx, d.wait+d.callTimeout)
	defer cancel()
	out, err := d.client.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(d.queueURL),
		MaxNumberOfMessages: int32(max),
		WaitTimeSeconds:     int32(d.wait / time.Second),
		VisibilityTimeout:   int32(d.visibility / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sqs: receive from %s: %w", d.queueURL, err)
	}
	msgs := make([]*notify.Message, len(out.Messages))
	for i, m := range out.Messages {
		n, _ := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)], 10, 64)
		msgs[i] = &notify.Message{ID: aws.ToString(m.MessageId), Body: []byte(aws.ToString(m.Body)),
			Deliveries: n, Handle: m.ReceiptHandle}
	}
	return msgs, nil
}

// Ack deletes the messages with one DeleteMessageBatch. A failed delete only
// means the message is delivered again, which the applier treats as a
// duplicate.
func (d *sqsDriver) Ack(ctx context.Context, msgs []*notify.Message) error {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.Handle.(*string)}
	}
	dctx, cancel := context.WithTimeout(ctx, d.callTimeout)
	defer cancel()
	out, err := d.client.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(d.queueURL), Entries: entries})
	if err != nil {
		return fmt.Errorf("sqs: delete %d messages: %w", len(entries), err)
	}
	return batchErrors("delete", msgs, out.Failed)
}

func (d *sqsDriver) Nack(context.Context, []*notify.Message) error { return nil }

// Extend resets the messages' visibility timeout with one
// ChangeMessageVisibilityBatch.
func (d *sqsDriver) Extend(ctx context.Context, msgs []*notify.Message) error {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
			ReceiptHandle: m.Handle.(*string), VisibilityTimeout: int32(d.visibility / time.Second)}
	}
	vctx, cancel := context.WithTimeout(ctx, d.callTimeout)
	defer cancel()
	out, err := d.client.ChangeMessageVisibilityBatch(vctx, &sqs.ChangeMessageVisibilityBatchInput{
		QueueUrl: aws.String(d.queueURL), Entries: entries})
	if err != nil {
		return fmt.Errorf("sqs: extend visibility of %d messages: %w", len(entries), err)
	}
	return batchErrors("extend visibility", msgs, out.Failed)
}

// batchErrors joins the failed entries of a batch call.
func batchErrors(op string, msgs []*notify.Message, failed []types.BatchResultErrorEntry) error {
	errs := make([]error, 0, len(failed))
	for _, f := range failed {
		id := aws.ToString(f.Id)
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(msgs) {
			id = msgs[i].ID
		}
		errs = append(errs, fmt.Errorf("sqs: %s message %s: %s: %s", op, id, aws.ToString(f.Code), aws.ToString(f.Message)))
	}
	return errors.Join(errs...)
}

// Fatal: only a missing queue; throttling, network and credential errors
// may pass.
func (d *sqsDriver) Fatal(err error) bool {
	var missing *types.QueueDoesNotExist
	return errors.As(err, &missing)
}
