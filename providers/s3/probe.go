package s3

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/imgly/syncer/notify"
)

// Probe implements notify.Prober: the queue's attributes are read (the
// queue exists and sqs:GetQueueAttributes is granted; ReceiveMessage would
// hide messages from the running worker, so it is not tried).
func (n Notifications) Probe(ctx context.Context) []notify.Check {
	var out []notify.Check
	if q := n.SQS; q != nil {
		out = append(out, n.probeSQS(ctx, q))
	}
	// The webhook is served by syncer itself: nothing to connect to.
	if n.Webhook != nil {
		out = append(out, notify.Check{Transport: TransportWebhook, Target: "/webhooks/s3/" + n.Source,
			Detail: "served by syncer run; point the bucket's webhook here"})
	}
	return out
}

func (n Notifications) probeSQS(ctx context.Context, q *SQS) notify.Check {
	c := notify.Check{Transport: TransportSQS, Target: q.QueueURL}
	client, err := n.sqsClient(ctx, options{})
	if err != nil {
		c.Err = err
		return c
	}
	res, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameVisibilityTimeout,
		},
	})
	if err != nil {
		c.Op, c.Err = "GetQueueAttributes", err
		return c
	}
	waiting := res.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
	if waiting == "" {
		waiting = "-"
	}
	c.Detail = "queue readable; about " + waiting + " messages waiting"
	return c
}
