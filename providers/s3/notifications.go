package s3

import (
	"context"
	"time"

	"github.com/imgly/syncer/internal/sdklog"
	"github.com/imgly/syncer/notify"
)

// Transports (label "transport" of the notification metrics, and the keys
// under a source's notifications).
const (
	TransportSQS     = "sqs"
	TransportWebhook = "webhook" // S3-compatible webhook (MinIO, Ceph)
)

// Notifications are the notification settings of one S3 source, as its
// Descriptor decodes them (providers.Configured.Notifications).
type Notifications struct {
	// Source is the source's id; Region its s3.region, the SQS client's
	// last resort; RequestTimeout its requestTimeout.
	Source         string        `yaml:"-"`
	Region         string        `yaml:"-"`
	RequestTimeout time.Duration `yaml:"-"`
	SQS            *SQS          `yaml:"sqs"`
	Webhook        *Webhook      `yaml:"webhook"`
}

// SQS is an SQS queue receiving S3 notifications (raw, SNS-wrapped or
// EventBridge): notifications.sqs.
type SQS struct {
	QueueURL          string        `yaml:"queueURL"`
	Endpoint          string        `yaml:"endpoint"`
	Region            string        `yaml:"region"`
	Concurrency       int           `yaml:"concurrency"`
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
	WaitTime          time.Duration `yaml:"waitTime"`
}

// Webhook is an S3-compatible (MinIO, Ceph) notification webhook, served at
// /webhooks/s3/<source id> and authenticated with a bearer token:
// notifications.webhook.
type Webhook struct {
	Token string `yaml:"token"`
}

// Endpoints implements notify.Offer.
func (n Notifications) Endpoints(ctx context.Context, env notify.Env) ([]notify.Endpoint, error) {
	var out []notify.Endpoint
	if n.SQS != nil {
		c, err := NewSQSConsumer(ctx, n, env.App, env.Log, env.Reg, WithAWSOptions(sdklog.AWSOptions(env.Log)...))
		if err != nil {
			return nil, err
		}
		out = append(out, notify.Endpoint{Transport: TransportSQS, Name: "sqs/" + n.Source, Consumer: c})
	}
	if n.Webhook != nil {
		// The handler answers methods itself: MinIO probes with HEAD.
		out = append(out, notify.Endpoint{Transport: TransportWebhook, Path: "/webhooks/s3/" + n.Source,
			Handler: NewWebhook(n, env.App, env.Log, env.Reg)})
	}
	return out, nil
}
