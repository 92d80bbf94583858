package s3

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/imgly/syncer/config"
	"github.com/imgly/syncer/notify"
	"github.com/imgly/syncer/notify/notifytest"
)

// SQS passes the kernel's conformance suite on fauxqs. The dead-letter path
// is the queue's redrive policy (maxReceiveCount 2), which SQS applies
// itself: the consumer only leaves a failing message in the queue.
func TestSQSConformance(t *testing.T) {
	notifytest.Run(t, notifytest.Harness{
		Provider: "s3", Transport: TransportSQS, Redelivery: time.Second, MinRedelivery: time.Second,
		IsMissing: func(err error) bool { var m *types.QueueDoesNotExist; return errors.As(err, &m) },
		New:       func(t *testing.T) notifytest.Queue { return newConformanceQueue(t) },
	})
}

type conformanceQueue struct {
	e      *env
	dlqURL string
}

func newConformanceQueue(t *testing.T) *conformanceQueue {
	t.Helper()
	e := newEnv(t, time.Second)
	ctx := t.Context()
	out, err := e.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(uniqueName(t, "dlq"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = e.sqs.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	attrs, err := e.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"2"}`, attrs.Attributes[string(types.QueueAttributeNameQueueArn)])
	if _, err := e.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(e.queueURL),
		Attributes: map[string]string{string(types.QueueAttributeNameRedrivePolicy): policy}}); err != nil {
		t.Fatal(err)
	}
	return &conformanceQueue{e: e, dlqURL: aws.ToString(out.QueueUrl)}
}

func (q *conformanceQueue) consumer(t *testing.T, queueURL string, app notify.Applier, reg prometheus.Registerer) *SQSConsumer {
	t.Helper()
	src := config.Source{ID: notifytest.SourceID, Provider: "s3", Bucket: notifytest.Bucket,
		Notifications: config.Notifications{SQS: &config.SQS{QueueURL: queueURL, Endpoint: q.e.endpoint,
			Concurrency: 2, VisibilityTimeout: time.Second, WaitTime: time.Second}}}
	c, err := NewSQSConsumer(t.Context(), notificationsOf(t, src), app, nil, reg, WithAWSOptions(awsTestOptions()...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (q *conformanceQueue) Consumer(t *testing.T, app notify.Applier, reg prometheus.Registerer) notifytest.Runner {
	return q.consumer(t, q.e.queueURL, app, reg)
}

func (q *conformanceQueue) Missing(t *testing.T) (notifytest.Runner, string) {
	name := uniqueName(t, "missing")
	return q.consumer(t, q.e.endpoint+"/000000000000/"+name, notifytest.NewGate(nil), nil), name
}

func (q *conformanceQueue) Send(t *testing.T, bucket, key string, seq int) {
	t.Helper()
	q.e.send(t, recordsBody(awsRecord("ObjectCreated:Put", bucket,
		obj{Key: key, Size: 1, ETag: fmt.Sprintf("e%d", seq), Sequencer: fmt.Sprintf("%02X", seq)})))
}

func (q *conformanceQueue) Unsettled(t *testing.T) int { return q.e.inQueue(t) }

func (q *conformanceQueue) DeadLettered(t *testing.T) int {
	return (&env{sqs: q.e.sqs, queueURL: q.dlqURL}).inQueue(t)
}
